"""The ask/tell interface of query-based search strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container
from typing import ClassVar

import numpy as np

from fewshot.nas.errors import NASError
from fewshot.nas.spaces.base import Arch, SearchSpace


class Strategy(ABC):
    """Proposes architectures (``ask``) and learns from their scores (``tell``; higher is better).

    All randomness comes from the generator passed to ``ask``; everything else a strategy
    remembers is in ``state_dict()`` (plain JSON values), so a search can stop and resume.
    ``seen`` holds the architectures already evaluated; strategies avoid proposing them again.
    """

    name: ClassVar[str]

    def __init__(self, space: SearchSpace):
        self.space = space

    @abstractmethod
    def ask(self, rng: np.random.Generator, seen: Container[object]) -> Arch: ...

    @abstractmethod
    def tell(self, arch: Arch, score: float) -> None: ...

    def settings(self) -> dict:
        """The constructor's settings (recorded in histories and checked on resume)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned; a stateless strategy accepts only an empty state."""
        if state:
            raise NASError(f"strategy {self.name!r} keeps no state, got keys {sorted(state)}")

    # helpers for subclasses: architectures <-> strings in state dicts
    def _dump(self, pairs) -> list:
        return [[self.space.to_string(a), s] for a, s in pairs]

    def _load(self, items) -> list:
        return [(self.space.parse(a), float(s)) for a, s in items]
