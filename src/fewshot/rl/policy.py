"""Gaussian MLP policies as modules whose parameters the functional core passes around as dicts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fewshot.functional import call
from fewshot.functional.params import Params

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
LOG_2PI = math.log(2 * math.pi)


class GaussianMLPPolicy(nn.Module):
    """``obs [..., D] -> (mean [..., A], log_std [A])``: an MLP mean and a state-independent log std."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (100, 100), activation: str = "relu", init_std=1.0
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        dims, layers = [obs_dim, *hidden], []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(dims[-1], act_dim))
        self.mean = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(obs), self.log_std


def distribution(policy: nn.Module, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean [..., A], log_std [A])`` of ``policy`` with ``params`` at ``obs [..., D]``."""
    return call(policy, params, {}, obs)  # type: ignore[return-value]


def log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Log density of a diagonal Gaussian: [..., A] -> [...]."""
    z = (actions - mean) * torch.exp(-log_std)
    return -(0.5 * z.pow(2) + log_std + 0.5 * LOG_2PI).sum(-1)


def kl_divergence(mean0: Tensor, log_std0: Tensor, mean1: Tensor, log_std1: Tensor) -> Tensor:
    """``KL(N0 || N1)`` of diagonal Gaussians: [..., A] -> [...]."""
    var0, var1 = torch.exp(2 * log_std0), torch.exp(2 * log_std1)
    return (log_std1 - log_std0 + (var0 + (mean0 - mean1).pow(2)) / (2 * var1) - 0.5).sum(-1)


def sample(mean: Tensor, log_std: Tensor, generator: torch.Generator | None) -> Tensor:
    """One action per row: [..., A]."""
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return mean + torch.exp(log_std) * noise
