"""Query-based search strategies behind one ask/tell interface, by name."""

from __future__ import annotations

import inspect

from fewshot.nas.errors import NASError
from fewshot.nas.strategies.bananas import Bananas
from fewshot.nas.strategies.base import Strategy
from fewshot.nas.strategies.evolution import RegularizedEvolution
from fewshot.nas.strategies.genetic import GeneticAlgorithm
from fewshot.nas.strategies.local_search import LocalSearch
from fewshot.nas.strategies.random_search import RandomSearch

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, RegularizedEvolution, GeneticAlgorithm, LocalSearch, Bananas)
}


def make_strategy(name: str, space, **settings) -> Strategy:
    """A strategy by name; unknown names and settings are a ``NASError`` listing the valid ones."""
    if name not in STRATEGIES:
        raise NASError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "space")]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise NASError(f"strategy {name!r} takes the settings {', '.join(valid) or '(none)'}, got {unknown}")
    return cls(space, **settings)


__all__ = [
    "STRATEGIES",
    "Bananas",
    "GeneticAlgorithm",
    "LocalSearch",
    "RandomSearch",
    "RegularizedEvolution",
    "Strategy",
    "make_strategy",
]
