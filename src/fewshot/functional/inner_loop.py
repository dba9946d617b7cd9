"""Inner loops as pure functions of parameter dicts.

Gradients come from ``torch.func.grad_and_value``, which composes with ``vmap`` and
with ordinary autograd outside it: when the starting parameters carry an autograd
graph, the adapted parameters are differentiable functions of them, so the outer
backward gives the exact second-order meta-gradient. ``first_order=True`` cuts that
graph at every step (the gradients and the point they are taken at are detached), so
the adapted parameters depend on the start only through the identity.

``engine="autograd"`` takes the same gradients with ``torch.autograd.grad`` instead:
identical values, less Python overhead in an eager per-task loop, but it works
neither under ``vmap`` nor inside ``torch.compile`` without graph breaks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from fewshot.functional.params import Params, detach

LossFn = Callable[..., Tensor]
"""``loss_fn(params, *data) -> scalar`` for one task."""

LearningRate = float | Tensor | Mapping[str, Tensor]
"""A float, a scalar tensor, or one tensor per parameter (Meta-SGD)."""


class InnerOptimizer(NamedTuple):
    """A functional optimizer: ``state = init(params)``;
    ``params, state = step(params, grads, state)``."""

    init: Callable[[Params], Any]
    step: Callable[[Params, Params, Any], tuple[Params, Any]]


def _lr(lr: LearningRate, name: str) -> float | Tensor:
    return lr[name] if isinstance(lr, Mapping) else lr


def sgd(lr: LearningRate) -> InnerOptimizer:
    """Plain gradient descent ``p - lr * g`` (``lr`` may be per parameter)."""

    def step(params: Params, grads: Params, state: Any) -> tuple[Params, Any]:
        return {k: p - _lr(lr, k) * grads[k] for k, p in params.items()}, state

    return InnerOptimizer(lambda params: (), step)


def adam(lr: LearningRate, betas: tuple[float, float] = (0.0, 0.999), eps: float = 1e-8) -> InnerOptimizer:
    """Adam with bias correction; ``betas[0] = 0`` by default as in Reptile.

    The state is ``(t, m, v)`` with the moments flat, [P] over all parameters in the
    params dict's order: a handful of vector ops a step instead of a dozen per tensor.
    """
    b1, b2 = betas

    def init(params: Params) -> tuple[int, Tensor, Tensor]:
        zeros = next(iter(params.values())).new_zeros(sum(p.numel() for p in params.values()))  # [P]
        return 0, zeros, zeros

    def step(params: Params, grads: Params, state: tuple[int | Tensor, Tensor, Tensor]) -> tuple[Params, Any]:
        t, m, v = state
        t = t + 1  # never in place: t may be a carried tensor (Reptile's carry_adam)
        g = torch.cat([grads[k].reshape(-1) for k in params])  # [P]
        m = g if b1 == 0 else b1 * m + (1 - b1) * g  # [P]
        v = torch.addcmul(b2 * v, g, g, value=1 - b2)  # [P]
        c1, root_c2 = 1 - b1**t, (1 - b2**t) ** 0.5
        # (m / c1) / (sqrt(v / c2) + eps), with the bias corrections moved onto the scalars
        direction = m / (v.sqrt() + eps * root_c2) * (root_c2 / c1)  # [P]
        sizes = [p.numel() for p in params.values()]
        if isinstance(lr, Mapping):  # one rate per parameter
            new = {k: p - lr[k] * d.view_as(p) for (k, p), d in zip(params.items(), direction.split(sizes))}
        else:
            flat = torch.cat([p.reshape(-1) for p in params.values()]) - lr * direction  # [P]
            new = {k: d.view_as(p) for (k, p), d in zip(params.items(), flat.split(sizes))}
        return new, (t, m, v)

    return InnerOptimizer(init, step)


def inner_loop(
    loss_fn: LossFn,
    params: Params,
    *data: Tensor,
    steps: int,
    optimizer: InnerOptimizer,
    first_order: bool = False,
    engine: str = "func",
    batch_size: int | None = None,
    return_state: bool = False,
) -> tuple[Params, Tensor] | tuple[Params, Tensor, Any]:
    """Take ``steps`` optimizer steps on ``loss_fn(params, *data)``.

    Returns the adapted parameters and the loss before each step, ``[steps]``
    (detached), and with ``return_state`` the optimizer's final state too. With
    ``first_order`` the gradients are detached; otherwise the adapted parameters keep
    the full graph back to ``params``. ``batch_size``: step ``i`` sees only rows
    ``i*b, ..., i*b + b - 1`` (mod M) of every data tensor [M, ...], cycling through
    the data in its given order; by default every step sees all of it.
    """
    if engine not in ("func", "autograd"):
        raise ValueError(f"engine must be 'func' or 'autograd', got {engine!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if engine == "func":
        grad_and_value = torch.func.grad_and_value(loss_fn)
    else:
        grad_and_value = _autograd_grad_and_value(loss_fn, first_order)
    if batch_size is not None:
        offsets = torch.arange(batch_size, device=data[0].device)  # [b]
    state = optimizer.init(params)
    losses = []
    for step in range(steps):
        point = detach(params) if first_order else params
        batch = data
        if batch_size is not None:
            rows = (offsets + step * batch_size) % data[0].shape[0]  # [b]
            batch = tuple(d[rows] for d in data)
        grads, loss = grad_and_value(point, *batch)
        if first_order:
            grads = detach(grads)  # loss_fn may close over tensors that carry a graph
        params, state = optimizer.step(params, grads, state)
        losses.append(loss.detach())
    losses = torch.stack(losses) if losses else torch.empty(0)
    return (params, losses, state) if return_state else (params, losses)


def _autograd_grad_and_value(loss_fn: LossFn, first_order: bool) -> Callable[..., tuple[Params, Tensor]]:
    """``torch.func.grad_and_value(loss_fn)`` written with ``torch.autograd.grad``."""

    def grad_and_value(params: Params, *data: Tensor) -> tuple[Params, Tensor]:
        with torch.enable_grad():
            point = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
            loss = loss_fn(point, *data)
            grads = torch.autograd.grad(
                loss, list(point.values()), create_graph=not first_order, allow_unused=True, materialize_grads=True
            )
        return dict(zip(point, grads)), loss

    return grad_and_value
