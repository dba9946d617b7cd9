"""``LearnerSpec``: what rebuilds a learner, stored once in every checkpoint, and ``build_algorithm``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fewshot.registry import ALGORITHMS

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class LearnerSpec:
    """An algorithm, its backbone and the shape of the data it was built for.

    ``ways`` is the number of classes of the training episodes (the head width of the
    fixed-way gradient methods); ``target_dim`` the outputs of a regression learner;
    ``num_train_classes`` the classes of the training split (the fine-tuning baseline's
    pre-training classifier); ``preprocessing`` how raw inputs became tensors (images:
    size, channels, inversion), so that deployment feeds new inputs the same way.
    """

    algorithm: str
    backbone: str
    input_shape: tuple[int, ...]
    ways: int
    task: str = "classification"
    target_dim: int | None = None
    num_train_classes: int = 0
    algorithm_options: dict[str, Any] = field(default_factory=dict)
    backbone_options: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))

    @property
    def outputs(self) -> int:
        """Width of a gradient method's head: the ways, or the regression targets."""
        return self.ways if self.task == "classification" else int(self.target_dim or 1)

    def with_options(self, **algorithm_options: Any) -> LearnerSpec:
        """The same learner with some algorithm options replaced (test-time settings such as ``adapt_steps``)."""
        return dataclasses.replace(self, algorithm_options={**self.algorithm_options, **algorithm_options})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LearnerSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"learner spec: unknown field(s) {', '.join(unknown)}")
        return cls(**values)


def build_algorithm(spec: LearnerSpec):
    """A freshly initialised algorithm for ``spec``: its registered class's ``from_spec``."""
    return ALGORITHMS.get(spec.algorithm).from_spec(spec)
