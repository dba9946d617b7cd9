"""Policy-gradient objectives and the outer steps: REINFORCE, the PPO clipped surrogate, TRPO.

Every function takes per-step tensors [..., T, K] (any leading axes) with ``mask`` 1 on the steps that
count, and averages over the counted steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)


def normalize(advantages: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Advantages centred and scaled to unit variance over the counted steps."""
    mean = masked_mean(advantages, mask)
    std = masked_mean((advantages - mean).pow(2), mask).sqrt()
    return (advantages - mean) / (std + eps) * mask


def reinforce_loss(logp: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """``-mean(log pi(a|s) * A)``: its gradient is minus the REINFORCE estimate of the policy gradient."""
    return -masked_mean(logp * advantages.detach(), mask)


def surrogate(logp: Tensor, logp_old: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """Importance-weighted surrogate ``mean(pi/pi_old * A)`` (TRPO's objective, to maximise)."""
    return masked_mean(torch.exp(logp - logp_old.detach()) * advantages.detach(), mask)


def ppo_clip_objective(logp: Tensor, logp_old: Tensor, advantages: Tensor, mask: Tensor, clip: float) -> Tensor:
    """PPO's clipped surrogate ``mean(min(r A, clip(r, 1-c, 1+c) A))`` (to maximise)."""
    ratio = torch.exp(logp - logp_old.detach())
    a = advantages.detach()
    return masked_mean(torch.minimum(ratio * a, ratio.clamp(1 - clip, 1 + clip) * a), mask)


def conjugate_gradient(fvp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10) -> Tensor:
    """Approximately solve ``F x = b`` for symmetric positive definite ``F`` given as a product ``fvp``."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), r @ r
    for _ in range(iters):
        Fp = fvp(p)
        alpha = rr / (p @ Fp)
        x, r = x + alpha * p, r - alpha * Fp
        rr_new = r @ r
        if rr_new < tol:
            break
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


def trpo_step(
    params: list[Tensor],
    objective: Callable[[], tuple[Tensor, Tensor]],
    max_kl: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    backtracks: int = 15,
    ratio: float = 0.5,
) -> dict[str, float]:
    """One TRPO step (Schulman et al. 2015) on ``params`` in place (under ``no_grad``).

    ``objective()`` returns ``(surrogate, kl)`` at the current values of ``params``: the surrogate to
    maximise and the mean KL from the policy that collected the data, 0 with zero gradient at the start.
    The step is the natural gradient scaled to ``kl = max_kl`` under the quadratic model, then shrunk by
    ``ratio`` until the surrogate improves and the true KL is at most ``max_kl``; if none does, nothing moves."""
    surr, kl = objective()
    grads = torch.autograd.grad(surr, params, retain_graph=True)
    g = torch.cat([x.reshape(-1) for x in grads])  # [P]
    kl_grads = torch.autograd.grad(kl, params, create_graph=True)
    flat_kl_grad = torch.cat([x.reshape(-1) for x in kl_grads])  # [P]

    def fvp(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(flat_kl_grad @ v, params, retain_graph=True)
        return torch.cat([x.reshape(-1) for x in hv]) + damping * v

    step = conjugate_gradient(fvp, g, cg_iters)
    shs = 0.5 * (step @ fvp(step))
    full = step * torch.sqrt(2 * max_kl / shs.clamp_min(1e-12)) if shs > 0 else torch.zeros_like(step)
    old = [p.detach().clone() for p in params]
    sizes = [p.numel() for p in params]
    base = float(surr.detach())
    stats = {"surrogate_before": base, "kl": 0.0, "surrogate_after": base, "accepted": 0.0, "step_fraction": 0.0}
    for i in range(backtracks):
        frac = ratio**i
        with torch.no_grad():
            for p, o, d in zip(params, old, (full * frac).split(sizes)):
                p.copy_(o + d.view_as(o))
            new_surr, new_kl = objective()
        if float(new_kl) <= max_kl and float(new_surr) > base:
            stats.update(kl=float(new_kl), surrogate_after=float(new_surr), accepted=1.0, step_fraction=frac)
            return stats
    with torch.no_grad():
        for p, o in zip(params, old):
            p.copy_(o)
    return stats
