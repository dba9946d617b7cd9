"""Optimizers on optimizees: the loss over each problem's data after given numbers of steps.

Learned rules and hand-designed optimizers run the same way, as ``torch.optim`` optimizers on a fresh
copy of the optimizee's module, stepping on the same minibatches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from fewshot.metaopt.optimizees import Optimizee

MakeOptimizer = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]

BASELINES: dict[str, Callable[[float], MakeOptimizer]] = {
    "adam": lambda lr: lambda ps: torch.optim.Adam(ps, lr=lr),
    "rmsprop": lambda lr: lambda ps: torch.optim.RMSprop(ps, lr=lr),
    "sgd-momentum": lambda lr: lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9),
    "nag": lambda lr: lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9, nesterov=True),
}
"""Hand-designed optimizers by name, as ``BASELINES[name](lr)(params)``."""


@dataclass
class Trajectory:
    losses: dict[int, float]  # step -> loss over all the optimizee's data (inf once diverged)
    nonfinite: int  # coordinate updates a learned rule's guard replaced
    diverged: bool  # the training loss became non-finite


def optimize(optimizee: Optimizee, make: MakeOptimizer, steps: int, record: Sequence[int] = ()) -> Trajectory:
    """Run ``make(params)`` for ``steps`` steps on ``optimizee``; the full-data loss at each step in
    ``record`` (and at ``steps``)."""
    module = optimizee.fresh_module()
    optimizer = make(module.parameters())
    wanted = set(record) | {steps}
    losses: dict[int, float] = {}
    diverged = False
    x, y = optimizee.data
    for step in range(steps + 1):
        if step in wanted:
            with torch.no_grad():
                value = float(optimizee.criterion(module(x), y))
            losses[step] = value if math.isfinite(value) else math.inf
        if step == steps:
            break
        loss = optimizee.module_loss(module, step)
        if not torch.isfinite(loss):
            diverged = True
            losses.update({s: math.inf for s in wanted if s > step})
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return Trajectory(losses, int(getattr(optimizer, "nonfinite", 0)), diverged)
