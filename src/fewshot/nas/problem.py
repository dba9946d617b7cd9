"""What a search optimises: a space plus an evaluation of its architectures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from fewshot.nas.spaces.base import Arch, SearchSpace

MODES = ("max", "min")


@dataclass
class Evaluation:
    """One query's outcome: ``metric`` is what the search sees (one run), ``report`` what a report
    uses for the same architecture (a mean over runs where known, else ``metric``)."""

    metric: float
    report: float | None = None
    info: dict = field(default_factory=dict)


class Problem(Protocol):
    """A search problem: ``space``, ``evaluate``, the direction ``mode`` and the best ``optimum`` if known."""

    name: str
    space: SearchSpace
    mode: str
    optimum: float | None

    def evaluate(self, arch: Arch, rng: np.random.Generator) -> Evaluation: ...


def regret(problem: Problem, report: float | None) -> float | None:
    """How far ``report`` is from the best known value (>= 0), or None when the optimum is unknown."""
    if problem.optimum is None or report is None:
        return None
    return problem.optimum - report if problem.mode == "max" else report - problem.optimum
