"""Regularized (aging) evolution, Real et al. 2019."""

from __future__ import annotations

from collections import deque

from fewshot.nas.errors import NASError
from fewshot.nas.strategies.base import Strategy


class RegularizedEvolution(Strategy):
    """Population of the ``population`` most recent evaluations; each child mutates the best of
    ``sample`` members drawn at random (a tournament); the oldest member dies, not the worst.
    The first ``population`` queries are random samples."""

    name = "evolution"

    def __init__(self, space, population: int = 20, sample: int = 5):
        super().__init__(space)
        if not 1 <= sample <= population:
            raise NASError(f"evolution needs 1 <= sample <= population, got sample={sample}, population={population}")
        self.population_size, self.sample_size = int(population), int(sample)
        self.population: deque = deque()  # (arch, score), oldest first

    def settings(self):
        return {"population": self.population_size, "sample": self.sample_size}

    def ask(self, rng, seen):
        if len(self.population) < self.population_size:
            return self.space.sample_unseen(rng, seen)
        picks = rng.choice(len(self.population), size=self.sample_size, replace=False)
        parent = max((self.population[int(i)] for i in picks), key=lambda m: m[1])[0]
        return self.space.mutate_unseen(parent, rng, seen)

    def tell(self, arch, score):
        self.population.append((arch, score))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def state_dict(self):
        return {"population": self._dump(self.population)}

    def load_state_dict(self, state):
        self.population = deque(self._load(state["population"]))
