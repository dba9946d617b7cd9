"""BANANAS-style search (White et al. 2021): a neural ensemble predicts scores, Thompson sampling picks."""

from __future__ import annotations

import numpy as np

from fewshot.nas.strategies.base import Strategy
from fewshot.nas.strategies.surrogate import MLPEnsemble


class Bananas(Strategy):
    """After ``init`` random samples, every ``batch`` queries: fit an MLP ensemble on the encodings
    of everything evaluated, build candidates (the unseen neighbours of the ``parents`` best and
    ``random`` unseen samples), and propose the ``batch`` candidates with the highest independent
    Thompson samples (one draw per candidate from the ensemble's mean and spread)."""

    name = "bananas"

    def __init__(
        self,
        space,
        init: int = 10,
        batch: int = 5,
        parents: int = 10,
        random: int = 20,
        members: int = 5,
        hidden: int = 32,
        steps: int = 200,
    ):
        super().__init__(space)
        self.init, self.batch, self.parents, self.random = int(init), int(batch), int(parents), int(random)
        self.model_settings = {"members": int(members), "hidden": int(hidden), "steps": int(steps)}
        self.told: list = []  # (arch, score)
        self.queue: list = []  # proposals not yet asked

    def settings(self):
        return {
            "init": self.init,
            "batch": self.batch,
            "parents": self.parents,
            "random": self.random,
            **self.model_settings,
        }

    def _propose(self, rng, seen) -> list:
        top = sorted(self.told, key=lambda m: -m[1])[: self.parents]
        pool = {a: None for parent, _ in top for a in self.space.neighbours(parent) if a not in seen}
        for _ in range(self.random):
            pool.setdefault(self.space.sample_unseen(rng, seen), None)
        candidates = [a for a in pool if a not in seen]
        if not candidates:
            return [self.space.sample_unseen(rng, seen)]
        x = np.stack([self.space.encode(a) for a, _ in self.told])  # [N, D]
        y = np.array([s for _, s in self.told])  # [N]
        model = MLPEnsemble(**self.model_settings).fit(x, y, seed=int(rng.integers(2**31)))
        mean, std = model.predict(np.stack([self.space.encode(a) for a in candidates]))  # [M], [M]
        draws = mean + std * rng.standard_normal(len(candidates))
        return [candidates[int(i)] for i in np.argsort(-draws, kind="stable")[: self.batch]]

    def ask(self, rng, seen):
        if len(self.told) + len(self.queue) < self.init or len(self.told) < 2:
            return self.space.sample_unseen(rng, seen)
        while self.queue:
            arch = self.queue.pop(0)
            if arch not in seen:
                return arch
        self.queue = self._propose(rng, seen)
        return self.queue.pop(0)

    def tell(self, arch, score):
        self.told.append((arch, score))

    def state_dict(self):
        return {"told": self._dump(self.told), "queue": [self.space.to_string(a) for a in self.queue]}

    def load_state_dict(self, state):
        self.told = self._load(state["told"])
        self.queue = [self.space.parse(a) for a in state["queue"]]
