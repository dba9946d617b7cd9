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

from collections.abc import Callable
from typing import Any, Literal, overload

import torch
from torch import Tensor

from fewshot.functional.params import Params, detach
from fewshot.optim.inner import InnerOptimizer

LossFn = Callable[..., Tensor]
"""``loss_fn(params, *data) -> scalar`` for one task."""
StepCallback = Callable[[int, Params], None]
"""``on_step(i, params)``: sees the parameters after step ``i``."""


@overload
def inner_loop(
    loss_fn: LossFn,
    params: Params,
    *data: Tensor,
    steps: int,
    optimizer: InnerOptimizer,
    first_order: bool = ...,
    engine: str = ...,
    batch_size: int | None = ...,
    return_state: Literal[False] = ...,
    pass_step: bool = ...,
    on_step: StepCallback | None = ...,
) -> tuple[Params, Tensor]: ...


@overload
def inner_loop(
    loss_fn: LossFn,
    params: Params,
    *data: Tensor,
    steps: int,
    optimizer: InnerOptimizer,
    first_order: bool = ...,
    engine: str = ...,
    batch_size: int | None = ...,
    return_state: Literal[True],
    pass_step: bool = ...,
    on_step: StepCallback | None = ...,
) -> tuple[Params, Tensor, Any]: ...


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
    pass_step: bool = False,
    on_step: StepCallback | None = None,
) -> tuple[Params, Tensor] | tuple[Params, Tensor, Any]:
    """Take ``steps`` optimizer steps on ``loss_fn(params, *data)``.

    Returns the adapted parameters and the loss before each step, ``[steps]``
    (detached), and with ``return_state`` the optimizer's final state too. With
    ``first_order`` the gradients are detached; otherwise the adapted parameters keep
    the full graph back to ``params``. ``batch_size``: step ``i`` sees only rows
    ``i*b, ..., i*b + b - 1`` (mod M) of every data tensor [M, ...], cycling through
    the data in its given order; by default every step sees all of it. ``pass_step``: call
    ``loss_fn(params, *data, step=i)`` with the step's index (per-step parameters, such as MAML++'s
    per-step BatchNorm). ``on_step(i, params)`` is called with the parameters after step ``i``
    (MAML++'s multi-step loss scores the query set there).
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
    losses: list[Tensor] = []
    for step in range(steps):
        point = detach(params) if first_order else params
        batch = data
        if batch_size is not None:
            rows = (offsets + step * batch_size) % data[0].shape[0]  # [b]
            batch = tuple(d[rows] for d in data)
        grads, loss = grad_and_value(point, *batch, **({"step": step} if pass_step else {}))
        if first_order:
            grads = detach(grads)  # loss_fn may close over tensors that carry a graph
        params, state = optimizer.step(params, grads, state)
        losses.append(loss.detach())
        if on_step is not None:
            on_step(step, params)
    stacked = torch.stack(losses) if losses else torch.empty(0)  # [steps]
    return (params, stacked, state) if return_state else (params, stacked)


def _autograd_grad_and_value(loss_fn: LossFn, first_order: bool) -> Callable[..., tuple[Params, Tensor]]:
    """``torch.func.grad_and_value(loss_fn)`` written with ``torch.autograd.grad``."""

    def grad_and_value(params: Params, *data: Tensor, **keywords: Any) -> tuple[Params, Tensor]:
        with torch.enable_grad():
            point = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
            loss = loss_fn(point, *data, **keywords)
            grads = torch.autograd.grad(
                loss, list(point.values()), create_graph=not first_order, allow_unused=True, materialize_grads=True
            )
        return dict(zip(point, grads)), loss

    return grad_and_value
