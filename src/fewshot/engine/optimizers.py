"""The outer optimizer and its learning-rate schedule: warmup, then constant, cosine, linear or step;
or ``hypergradient``, the rate itself learned online by hypergradient descent (Baydin et al., 2018)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from fewshot.engine.config import TrainConfig

HYPERGRADIENT_LR = {"adam": 1e-7, "sgd": 1e-3}
"""Default rates of the learning rate (``beta``), the values of Baydin et al.'s experiments."""


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.schedule == "hypergradient":
        beta = config.hypergradient_lr if config.hypergradient_lr is not None else HYPERGRADIENT_LR[config.optimizer]
        if config.optimizer == "adam":
            return AdamHD(params, lr=config.lr, hypergradient_lr=beta, weight_decay=config.weight_decay)
        if config.optimizer == "sgd":
            return SGDHD(
                params, lr=config.lr, hypergradient_lr=beta, momentum=config.momentum, weight_decay=config.weight_decay
            )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; valid: adam, sgd")


def lr_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of ``lr`` at ``step``: linear warmup, then the schedule (``hypergradient``: 1, the
    optimizer moves its own rate)."""
    if config.warmup and step < config.warmup:
        return (step + 1) / config.warmup
    if config.schedule in ("constant", "hypergradient"):
        return 1.0
    done = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))  # of the post-warmup steps
    if config.schedule == "cosine":  # from lr to min_lr
        floor = config.min_lr / config.lr if config.lr else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done))
    if config.schedule == "linear":  # to 0 at the last step, as Reptile anneals its outer step size
        return 1.0 - done
    if config.schedule == "step":
        return config.gamma ** (step // (config.step_size or max(1, config.steps // 4)))
    raise ValueError(f"unknown schedule {config.schedule!r}; valid: constant, cosine, linear, step, hypergradient")


# -- hypergradient descent on the learning rate ------------------------------------------------------

Direction = Callable[[dict, Tensor], Tensor | None]


def hypergradient_step(optimizer: torch.optim.Optimizer, direction: Direction) -> None:
    """Baydin et al.'s rate update, before a step, for every parameter group: ``alpha += beta * g . u``,
    with ``g`` the gradients now (plus ``weight_decay * p``, the optimizer's L2 term) and ``u`` the
    previous step's direction (that step was ``-alpha * u``; ``direction(group, p)``, None before the
    first), both over all of the group's parameters: ``-g . u`` is the derivative of the loss now with
    respect to the previous step's rate. The rate is kept in ``group["hd_lr"]`` (saved with the
    optimizer's state) and copied into ``group["lr"]`` for the step, over what a scheduler wrote."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            h: Tensor | None = None
            for p in group["params"]:
                u = direction(group, p) if p.grad is not None else None
                if u is None:
                    continue
                g = p.grad if not group["weight_decay"] else p.grad + group["weight_decay"] * p
                term = torch.dot(g.reshape(-1), u.reshape(-1).to(g.dtype))
                h = term if h is None else h + term
            if h is not None:
                group["hd_lr"] = group["hd_lr"] + group["hypergradient_lr"] * float(h)
            group["lr"] = group["hd_lr"]


def _start_rates(optimizer: torch.optim.Optimizer, hypergradient_lr: float) -> None:
    if not hypergradient_lr >= 0:
        raise ValueError(f"hypergradient_lr must be non-negative, got {hypergradient_lr!r}")
    for group in optimizer.param_groups:
        group.setdefault("hd_lr", float(group["lr"]))
        group.setdefault("hypergradient_lr", float(hypergradient_lr))


class AdamHD(torch.optim.Adam):
    """Adam-HD (Baydin et al., 2018): Adam whose learning rate starts at ``lr`` and follows hypergradient
    descent with rate ``hypergradient_lr`` (:func:`hypergradient_step`; the direction ``u`` is Adam's
    bias-corrected ``m / (sqrt(v) + eps)`` of the previous step). The current rate: ``param_groups[i]["hd_lr"]``."""

    def __init__(self, params: Iterable, lr: float = 1e-3, hypergradient_lr: float = 1e-7, **options) -> None:
        if options.get("amsgrad") or options.get("maximize"):
            raise ValueError("AdamHD: amsgrad and maximize are not supported")
        super().__init__(params, lr=lr, **options)
        _start_rates(self, hypergradient_lr)

    def _direction(self, group: dict, p: Tensor) -> Tensor | None:
        state = self.state.get(p)
        if not state or float(state["step"]) == 0:
            return None
        t = float(state["step"])
        b1, b2 = group["betas"]
        denom = state["exp_avg_sq"].sqrt() / math.sqrt(1 - b2**t) + group["eps"]  # as torch's Adam
        return state["exp_avg"] / (1 - b1**t) / denom

    def step(self, closure=None):
        loss = None
        if closure is not None:  # the gradients the rate update reads come first
            with torch.enable_grad():
                loss = closure()
        hypergradient_step(self, self._direction)
        super().step()
        return loss


class SGDHD(torch.optim.SGD):
    """SGD-HD (Baydin et al., 2018), with optional (heavy-ball) momentum: SGD whose learning rate starts at
    ``lr`` and follows hypergradient descent with rate ``hypergradient_lr`` (:func:`hypergradient_step`;
    the direction ``u`` is the previous step's gradient, or its momentum buffer). The current rate:
    ``param_groups[i]["hd_lr"]``."""

    def __init__(self, params: Iterable, lr: float = 1e-2, hypergradient_lr: float = 1e-3, **options) -> None:
        if options.get("nesterov") or options.get("maximize"):
            raise ValueError("SGDHD: nesterov and maximize are not supported")
        super().__init__(params, lr=lr, **options)
        _start_rates(self, hypergradient_lr)

    def _direction(self, group: dict, p: Tensor) -> Tensor | None:
        state = self.state.get(p) or {}
        return state.get("momentum_buffer" if group["momentum"] else "hd_direction")

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        hypergradient_step(self, self._direction)
        plain = []  # without momentum the step's direction is its gradient (plus weight decay): keep it
        with torch.no_grad():
            for group in self.param_groups:
                if not group["momentum"]:
                    wd = group["weight_decay"]
                    plain += [
                        (p, p.grad + wd * p if wd else p.grad.clone()) for p in group["params"] if p.grad is not None
                    ]
        super().step()
        for p, u in plain:
            self.state[p]["hd_direction"] = u
        return loss
