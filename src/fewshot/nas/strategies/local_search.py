"""Local search (hill climbing with random restarts), strong on tabular benchmarks (White et al. 2021)."""

from __future__ import annotations

from fewshot.nas.strategies.base import Strategy


class LocalSearch(Strategy):
    """Start from the best of ``init`` random samples; evaluate the neighbours of the current
    architecture in random order and move to the first that improves on it
    (``first_improvement=False``: to the best, once all are evaluated). At a local optimum,
    restart from the best of ``restart`` fresh random samples."""

    name = "local"

    def __init__(self, space, init: int = 10, restart: int = 1, first_improvement: bool = True):
        super().__init__(space)
        self.init, self.restart, self.first_improvement = int(init), int(restart), bool(first_improvement)
        self.scores: dict = {}  # arch -> score of everything told
        self.current = None  # the architecture the climb stands on
        self.queue: list = []  # neighbours of current not yet proposed
        self.tried: list = []  # neighbours of current proposed (or already known)
        self.starts: list = []  # random samples of the current (re)start
        self.to_sample = self.init

    def settings(self):
        return {"init": self.init, "restart": self.restart, "first_improvement": self.first_improvement}

    def _best(self, archs):
        known = [a for a in archs if a in self.scores]
        return max(known, key=self.scores.__getitem__) if known else None

    def _climb_from(self, arch, rng) -> None:
        near = self.space.neighbours(arch)
        self.current, self.tried, self.starts = arch, [], []
        self.queue = [near[int(i)] for i in rng.permutation(len(near))]

    def ask(self, rng, seen):
        while True:
            if self.current is None:
                if self.to_sample > 0 or self._best(self.starts) is None:
                    self.to_sample = max(self.to_sample - 1, 0)
                    arch = self.space.sample_unseen(rng, seen)
                    self.starts.append(arch)
                    return arch
                self._climb_from(self._best(self.starts), rng)
                continue
            here = self.scores[self.current]
            best = self._best(self.tried)
            if self.first_improvement and best is not None and self.scores[best] > here:
                self._climb_from(best, rng)
                continue
            if self.queue:
                arch = self.queue.pop(0)
                self.tried.append(arch)
                if arch not in seen:
                    return arch
                continue  # already known: maybe it improves, look again
            if best is not None and self.scores[best] > here:
                self._climb_from(best, rng)
            elif len([a for a in self.tried if a in self.scores]) < len(self.tried):
                return self.space.sample_unseen(rng, seen)  # neighbours still being evaluated: explore meanwhile
            else:
                self.current, self.to_sample = None, self.restart  # local optimum

    def tell(self, arch, score):
        self.scores[arch] = score

    def state_dict(self):
        s = self.space.to_string
        return {
            "scores": self._dump(self.scores.items()),
            "current": None if self.current is None else s(self.current),
            "queue": [s(a) for a in self.queue],
            "tried": [s(a) for a in self.tried],
            "starts": [s(a) for a in self.starts],
            "to_sample": self.to_sample,
        }

    def load_state_dict(self, state):
        p = self.space.parse
        self.scores = dict(self._load(state["scores"]))
        self.current = None if state["current"] is None else p(state["current"])
        self.queue = [p(a) for a in state["queue"]]
        self.tried = [p(a) for a in state["tried"]]
        self.starts = [p(a) for a in state["starts"]]
        self.to_sample = int(state["to_sample"])
