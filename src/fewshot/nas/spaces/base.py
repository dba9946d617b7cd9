"""The search-space interface every strategy works through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container, Hashable
from typing import Generic, TypeVar

import numpy as np

Arch = Hashable  # an architecture as the space represents it (a tuple of choice indices, a genotype, ...)
A = TypeVar("A", bound=Hashable)  # the architecture type of one space


class SearchSpace(ABC, Generic[A]):
    """A set of architectures with the moves a search needs.

    Architectures are hashable values; ``to_string`` / ``parse`` give the canonical string
    of each (the form stored in histories and state files and printed to users).
    """

    name: str = "space"

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> A:
        """One architecture drawn uniformly (or as uniformly as the space allows)."""

    @abstractmethod
    def neighbours(self, arch: A) -> list[A]:
        """Every architecture one elementary change away from ``arch`` (in a fixed order)."""

    def mutate(self, arch: A, rng: np.random.Generator) -> A:
        """A random neighbour of ``arch`` (a fresh sample when it has none)."""
        near = self.neighbours(arch)
        return near[int(rng.integers(len(near)))] if near else self.sample(rng)

    @abstractmethod
    def crossover(self, a: A, b: A, rng: np.random.Generator) -> A:
        """A child taking each part from one of two parents."""

    @abstractmethod
    def encode(self, arch: A) -> np.ndarray:
        """A fixed-length float vector (one-hot style) for surrogate models."""

    @abstractmethod
    def to_string(self, arch: A) -> str:
        """The canonical string of ``arch``."""

    @abstractmethod
    def parse(self, text: str) -> A:
        """The architecture of a canonical string; ``NASError`` when it does not parse or fit."""

    @abstractmethod
    def contains(self, arch: Arch) -> bool:
        """Whether ``arch`` is a member of this space."""

    @property
    def size(self) -> int | None:
        """Number of architectures, or None when unknown or astronomically large."""
        return None

    def sample_unseen(self, rng: np.random.Generator, seen: Container[object], tries: int = 100) -> A:
        """A sample not in ``seen`` (after ``tries`` failures, the last sample)."""
        arch = self.sample(rng)
        for _ in range(tries):
            if arch not in seen:
                return arch
            arch = self.sample(rng)
        return arch

    def mutate_unseen(self, arch: A, rng: np.random.Generator, seen: Container[object], tries: int = 20) -> A:
        """A mutation of ``arch`` not in ``seen``; falls back to an unseen sample."""
        for _ in range(tries):
            child = self.mutate(arch, rng)
            if child not in seen:
                return child
        return self.sample_unseen(rng, seen)
