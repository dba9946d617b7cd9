"""The classic generational genetic algorithm: selection, crossover, mutation, elitism."""

from __future__ import annotations

from fewshot.nas.errors import NASError
from fewshot.nas.strategies.base import Strategy


class GeneticAlgorithm(Strategy):
    """Generations of ``population`` members. The ``elite`` best survive unchanged; every other
    member of the next generation is a child of two tournament winners (``tournament`` members
    each), crossed over with probability ``crossover`` and mutated with probability ``mutation``
    (always when it would repeat an evaluated architecture)."""

    name = "genetic"

    def __init__(
        self,
        space,
        population: int = 20,
        elite: int = 2,
        tournament: int = 3,
        crossover: float = 0.5,
        mutation: float = 0.8,
    ):
        super().__init__(space)
        if not 0 <= elite < population or tournament < 1 or not (0 <= crossover <= 1 and 0 <= mutation <= 1):
            raise NASError("genetic needs 0 <= elite < population, tournament >= 1, probabilities in [0, 1]")
        self.population_size, self.elite, self.tournament = int(population), int(elite), int(tournament)
        self.p_crossover, self.p_mutation = float(crossover), float(mutation)
        self.population: list = []  # (arch, score) of the current generation
        self.offspring: list = []  # (arch, score) evaluated for the next generation
        self.pending = 0  # asked but not yet told

    def settings(self):
        return {
            "population": self.population_size,
            "elite": self.elite,
            "tournament": self.tournament,
            "crossover": self.p_crossover,
            "mutation": self.p_mutation,
        }

    def _select(self, rng):
        picks = rng.choice(len(self.population), size=min(self.tournament, len(self.population)), replace=False)
        return max((self.population[int(i)] for i in picks), key=lambda m: m[1])[0]

    def ask(self, rng, seen):
        self.pending += 1
        if not self.population:  # the first generation is random
            return self.space.sample_unseen(rng, seen)
        a, b = self._select(rng), self._select(rng)
        child = self.space.crossover(a, b, rng) if rng.random() < self.p_crossover else a
        if rng.random() < self.p_mutation or child in seen:
            child = self.space.mutate_unseen(child, rng, seen)
        return child

    def tell(self, arch, score):
        self.pending -= 1
        self.offspring.append((arch, score))
        size = self.population_size if not self.population else self.population_size - self.elite
        if len(self.offspring) >= size and self.pending <= 0:
            elites = sorted(self.population, key=lambda m: -m[1])[: self.elite]
            self.population, self.offspring = elites + self.offspring, []

    def state_dict(self):
        return {
            "population": self._dump(self.population),
            "offspring": self._dump(self.offspring),
            "pending": self.pending,
        }

    def load_state_dict(self, state):
        self.population = self._load(state["population"])
        self.offspring = self._load(state["offspring"])
        self.pending = int(state["pending"])
