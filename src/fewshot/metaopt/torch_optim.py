"""A learned rule as a ``torch.optim.Optimizer`` for any model."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fewshot.metaopt.rules import LearnedRule
from fewshot.metaopt.store import load_rule

log = logging.getLogger("fewshot.metaopt")


class LearnedOptimizer(torch.optim.Optimizer):
    """``LearnedOptimizer(model.parameters(), path)``: the learned rule stored at ``path`` (a checkpoint or
    run folder of ``fewshot metaopt train``), or a ``LearnedRule`` module, as a torch optimizer.

    Each step applies the rule's functional form to the parameters that have gradients, so it gives the
    same update as ``rule.functional(...)`` and as MAML's inner optimizer. The per-coordinate state
    (LSTM hidden states, momenta) lives in ``state[p]``. Non-finite updates fall back as the rule says
    (``fallback_lr``, default the stored setting: 0, the coordinate is left where it is), are logged,
    and counted in ``nonfinite`` (coordinate updates replaced so far).
    """

    def __init__(self, params: Iterable, rule: str | Path | LearnedRule, *, fallback_lr: float | None = None) -> None:
        overrides = {} if fallback_lr is None else {"fallback_lr": fallback_lr}
        if isinstance(rule, LearnedRule):
            if overrides:
                raise ValueError("fallback_lr applies to a rule loaded from a path; set it on the rule instead")
            module = rule
        else:
            module = load_rule(rule, **overrides)
        super().__init__(params, {})
        self.rule = module
        self.nonfinite = 0
        own = {k: v.detach() for k, v in module.named_parameters()}
        self._step = module.functional(own).step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        by_step: dict[int, list[Tensor]] = {}  # parameters at the same step count share one call of the rule
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LearnedOptimizer does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    for i, c in enumerate(self.rule.init_coords(p.detach().reshape(-1))):
                        state[f"coords{i}"] = c
                by_step.setdefault(state["step"], []).append(p)
        for t, ps in by_step.items():
            self._apply(t, ps)
        return loss

    def _apply(self, t: int, ps: list[Tensor]) -> None:
        names = [str(i) for i in range(len(ps))]
        params = dict(zip(names, [p.detach() for p in ps]))
        grads = {name: p.grad for name, p in zip(names, ps) if p.grad is not None}  # all of them: see step
        count = len([k for k in self.state[ps[0]] if k.startswith("coords")])
        coords = tuple(torch.cat([self.state[p][f"coords{i}"] for p in ps]) for i in range(count))  # [P, ...]
        new, (_, coords, bad) = self._step(params, grads, (t, coords, ps[0].new_zeros(())))
        sizes = [p.numel() for p in ps]
        for p, name in zip(ps, names):
            p.copy_(new[name])
        for i, c in enumerate(coords):
            for p, part in zip(ps, c.split(sizes)):
                self.state[p][f"coords{i}"] = part
        for p in ps:
            self.state[p]["step"] = t + 1
        replaced = int(bad)
        if replaced:
            self.nonfinite += replaced
            log.warning(
                "learned optimizer: %d non-finite coordinate update(s) at step %d replaced by the fallback "
                "(fallback_lr=%g)",
                replaced,
                t + 1,
                self.rule.fallback_lr,
            )
