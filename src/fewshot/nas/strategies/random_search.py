"""Random search: uniform samples, never the same architecture twice (the baseline every paper reports)."""

from __future__ import annotations

from fewshot.nas.strategies.base import Strategy


class RandomSearch(Strategy):
    name = "random"

    def ask(self, rng, seen):
        return self.space.sample_unseen(rng, seen)

    def tell(self, arch, score):
        pass
