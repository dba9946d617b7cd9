"""Returns, the linear feature baseline (Duan et al. 2016) and generalised advantage estimation.

Rollouts are time-major, ``[T, E]`` over T steps of E episodes, with ``mask [T, E]`` 1 while an
episode runs (0 after it terminated); an episode still running at ``T`` is cut there (value 0 after it,
as MAML's fixed-horizon tasks do).
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """``R_t = sum_l gamma^l r_{t+l}`` within each episode: [T, E] -> [T, E]."""
    out, running = torch.zeros_like(rewards), torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] * mask[t] + gamma * running * mask[t]
        out[t] = running
    return out


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimates (Schulman et al. 2016): [T, E] -> [T, E].

    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)`` with ``V = 0`` past the episode's end, and
    ``A_t = delta_t + gamma lam A_{t+1}``; ``lam = 1`` gives ``R_t - V(s_t)``."""
    T = rewards.shape[0]
    next_values = torch.cat([values[1:] * mask[1:], torch.zeros_like(values[:1])])  # [T, E]
    deltas = (rewards + gamma * next_values - values) * mask  # [T, E]
    out, running = torch.zeros_like(rewards), torch.zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        running = deltas[t] + gamma * lam * running * (mask[t + 1] if t + 1 < T else 0.0)
        out[t] = running
    return out


def baseline_features(obs: Tensor) -> Tensor:
    """``[o, o^2, t, t^2, t^3, 1]``, ``o`` clipped to [-10, 10], ``t`` = step / 100: [T, ..., D] -> [T, ..., F]."""
    o = obs.clamp(-10, 10)
    t = torch.arange(obs.shape[0], dtype=obs.dtype).view(-1, *([1] * (obs.dim() - 1))).expand(*obs.shape[:-1], 1) / 100
    return torch.cat([o, o * o, t, t**2, t**3, torch.ones_like(t)], -1)


def fit_linear_baseline(obs: Tensor, returns: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Values of the ridge regression of ``returns`` on :func:`baseline_features`, one fit per group.

    obs [T, G, K, D], returns and mask [T, G, K] (G groups, e.g. tasks, of K episodes) -> values [T, G, K].
    The regularisation grows tenfold until the normal equations are solvable, as in rllab."""
    dtype, obs, returns, mask = obs.dtype, obs.double(), returns.double(), mask.double()
    feats = baseline_features(obs) * mask.unsqueeze(-1)  # [T, G, K, F]
    F_ = feats.permute(1, 0, 2, 3).reshape(obs.shape[1], -1, feats.shape[-1])  # [G, T*K, F]
    y = (returns * mask).permute(1, 0, 2).reshape(obs.shape[1], -1, 1)  # [G, T*K, 1]
    gram, rhs = F_.transpose(1, 2) @ F_, F_.transpose(1, 2) @ y  # [G, F, F], [G, F, 1]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    for _ in range(5):
        w, info = torch.linalg.solve_ex(gram + reg * eye, rhs)  # [G, F, 1]
        if bool((info == 0).all()) and bool(torch.isfinite(w).all()):
            break
        reg *= 10
    return (feats @ w.unsqueeze(0)).squeeze(-1).to(dtype)  # [T, G, K]
