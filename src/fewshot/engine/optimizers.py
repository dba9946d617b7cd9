"""The outer optimizer and its learning-rate schedule: warmup, then constant, cosine, linear or step."""

from __future__ import annotations

import math

import torch

from fewshot.engine.config import TrainConfig


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; valid: adam, sgd")


def lr_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of ``lr`` at ``step``: linear warmup, then the schedule."""
    if config.warmup and step < config.warmup:
        return (step + 1) / config.warmup
    if config.schedule == "constant":
        return 1.0
    done = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))  # of the post-warmup steps
    if config.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * done))
    if config.schedule == "linear":  # to 0 at the last step, as Reptile anneals its outer step size
        return 1.0 - done
    if config.schedule == "step":
        return config.gamma ** (step // (config.step_size or max(1, config.steps // 4)))
    raise ValueError(f"unknown schedule {config.schedule!r}; valid: constant, cosine, linear, step")
