"""Task families of skills: distributions of MDPs, each task a record of its parameters.

A family is a final class with ``sample_tasks(n, generator) -> list[Task]``, ``task(**params)`` (checked
against the parameter ranges), ``make_env(task)`` (one gymnasium environment) and
``make_vector_env(num_envs, mode)`` (a gymnasium vector environment whose sub-environments take their task
through ``set_attr("task", tasks)``). Families are found by name in ``FAMILIES``.

This is not the core's episode ``TaskFamily`` (which returns an ``Episode`` of tensors and has ``task``):
an MDP is sampled by acting in it, so RL tasks reach the trainer through rollouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fewshot.registry import Registry
from fewshot.rl.errors import INSTALL_HINT, RLError

FAMILIES = Registry("RL task family", "fewshot.rl_families")
for _name, _target in {
    "pointnav": "fewshot.rl.envs.pointnav:PointNav",
    "cheetah-dir": "fewshot.rl.envs.cheetah:CheetahDirection",
    "cheetah-vel": "fewshot.rl.envs.cheetah:CheetahVelocity",
    "cheetah-physics": "fewshot.rl.envs.cheetah:CheetahPhysics",
}.items():
    FAMILIES.register(_name, _target)


@dataclass(frozen=True)
class ParamSpec:
    """A task parameter: its range, and whether it takes only the integers in it (a joint index)."""

    low: float
    high: float
    integer: bool = False
    choices: tuple[float, ...] | None = None  # a discrete set instead of a uniform range

    def check(self, family: str, name: str, value: float) -> float:
        value = float(value)
        if self.choices is not None and value not in self.choices:
            raise RLError(f"{family} task parameter {name}={value:g} is not one of {list(self.choices)}")
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise RLError(f"{family} task parameter {name}={value:g} is outside [{self.low:g}, {self.high:g}]")
        if self.integer and value != int(value):
            raise RLError(f"{family} task parameter {name}={value:g} must be an integer")
        return value

    def sample(self, generator: torch.Generator) -> float:
        if self.choices is not None:
            return float(self.choices[int(torch.randint(len(self.choices), (), generator=generator))])
        if self.integer:
            return float(torch.randint(int(self.low), int(self.high) + 1, (), generator=generator))
        u = float(torch.rand((), generator=generator, dtype=torch.float64))
        return self.low + (self.high - self.low) * u


@dataclass(frozen=True)
class Task:
    """One MDP of a family: its name and parameters (``{"goal_x": 0.3, "goal_y": -0.1}``)."""

    family: str
    params: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self.params)}


class TaskFamily:
    """Shared code of the families: parameter ranges, sampling, checks. Subclasses are final."""

    name: str = ""
    params: dict[str, ParamSpec] = {}
    horizon: int = 100
    batched_natively = False  # its vector environment is arrays (any number of environments costs nothing)

    def sample_tasks(self, n: int, generator: torch.Generator | None = None) -> list[Task]:
        """``n`` tasks drawn from the family's distribution (reproducible with ``generator``)."""
        if n < 1:
            raise RLError(f"sample_tasks needs n >= 1, got {n}")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        return [self.task(**self.draw(g)) for _ in range(n)]

    def draw(self, generator: torch.Generator) -> dict[str, float]:
        """One task's parameters; families whose parameters are not independent override this."""
        return {k: spec.sample(generator) for k, spec in self.params.items()}

    def task(self, **params: float) -> Task:
        """A task with the given parameters, each checked against its range (missing ones: an error)."""
        unknown, missing = set(params) - set(self.params), set(self.params) - set(params)
        if unknown or missing:
            raise RLError(
                f"{self.name} tasks take parameters {', '.join(self.params)}; "
                + (f"unknown: {', '.join(sorted(unknown))}" if unknown else f"missing: {', '.join(sorted(missing))}")
            )
        return Task(self.name, {k: self.params[k].check(self.name, k, v) for k, v in params.items()})

    def features(self, task: Task) -> list[float]:
        """The task's parameters scaled to [-1, 1] by their ranges: what the oracle policy sees."""
        out = []
        for k, spec in self.params.items():
            half = (spec.high - spec.low) / 2 or 1.0
            out.append((task.params[k] - (spec.low + spec.high) / 2) / half)
        return out

    def make_env(self, task: Task | None = None, render_mode: str | None = None) -> Any:
        """One gymnasium environment of ``task`` (``render_mode="rgb_array"`` where the family renders)."""
        raise NotImplementedError

    def make_vector_env(self, num_envs: int, mode: str = "sync") -> Any:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.name,
            "horizon": self.horizon,
            "params": {k: [s.low, s.high] for k, s in self.params.items()},
        }


def get_family(name: str, **options: Any) -> TaskFamily:
    """The family registered as ``name``, built with ``options`` (``horizon=...``); an unknown name is one
    error listing the valid ones."""
    try:
        cls = FAMILIES.get(name)
    except ValueError as e:  # unknown, or its module cannot be imported (gymnasium missing)
        raise RLError(f"{e}" + (f"; {INSTALL_HINT}" if "cannot be loaded" in str(e) else "")) from None
    try:
        return FAMILIES.build(name, **options)
    except RLError:
        raise
    except (TypeError, ValueError) as e:
        raise RLError(f"{cls.__name__}: {e}") from None
