"""Inner optimizers as values, optax-style: small factories closing over their settings, with
explicit state, that the gradient algorithms take as an argument (``MAML(model, inner_opt=adam(0.01))``).

A pure optimizer is an ``InnerOptimizer``: ``state = init(params)`` and
``params, state = step(params, grads, state)`` over dicts of tensors, differentiable end to end
(second-order meta-gradients flow through ``step``). An optimizer with meta-learned parameters
(Meta-SGD's per-parameter rates, MAML++'s per-step rates, a learned update rule) is an ``nn.Module`` with
``functional(own_params) -> InnerOptimizer``: the algorithm holds it as a submodule, so the outer
loop trains its parameters and checkpoints save them, and hands it its parameters explicitly, so
that ``adapt`` can detach them and ``vmap`` sees plain tensors. No subclass of an algorithm is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from fewshot.registry import INNER_OPTIMIZERS

Params = dict[str, Tensor]
LearningRate = float | Tensor | Mapping[str, Tensor]
"""A float, a scalar tensor, or one tensor per parameter (Meta-SGD)."""


class InnerOptimizer(NamedTuple):
    """A functional optimizer: ``state = init(params)``; ``params, state = step(params, grads, state)``."""

    init: Callable[[Params], Any]
    step: Callable[[Params, Params, Any], tuple[Params, Any]]


def _lr(lr: LearningRate, name: str) -> float | Tensor:
    return lr[name] if isinstance(lr, Mapping) else lr


def sgd(lr: LearningRate) -> InnerOptimizer:
    """Plain gradient descent ``p - lr * g`` (``lr`` may be one tensor per parameter)."""

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


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot contain dots


class LearnedRates(nn.Module):
    """Meta-SGD's inner rule (Li et al., 2017): ``theta - alpha * grad`` with ``alpha`` a meta-learned
    tensor shaped like each adapted weight, initialised to ``lr`` (``lrs``, keyed by parameter name
    with dots written ``__``)."""

    def __init__(self, params: Mapping[str, Tensor], lr: float = 0.4) -> None:
        super().__init__()
        self.lrs = nn.ParameterDict(
            {_key(k): nn.Parameter(torch.full_like(p.detach(), float(lr))) for k, p in params.items()}
        )

    def names(self) -> set[str]:
        """The parameter names that have a rate (the ones the inner loop adapts)."""
        return {k.replace("__", ".") for k in self.lrs}

    def functional(self, own: Mapping[str, Tensor]) -> InnerOptimizer:
        """SGD with the rates in ``own`` (``dict(self.named_parameters())``, possibly detached)."""
        return sgd({k.removeprefix("lrs.").replace("__", "."): v for k, v in own.items()})


class PerStepRates(nn.Module):
    """LSLR, MAML++'s inner rule (Antoniou et al., 2019): at inner step ``i``, ``theta - alpha[i] * grad``
    with one meta-learned rate per parameter tensor and per step (``lrs``: [steps] per adapted tensor,
    keyed by its name with dots written ``__``), initialised to ``lr``. The optimizer state is the step
    counter; steps past ``steps`` (``adapt`` with more steps than trained) reuse the last step's rates."""

    def __init__(self, params: Mapping[str, Tensor], lr: float = 0.1, steps: int = 1) -> None:
        super().__init__()
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"PerStepRates needs steps >= 1, got {steps!r}")
        self.steps = steps
        self.lrs = nn.ParameterDict(
            {
                _key(k): nn.Parameter(torch.full((steps,), float(lr), dtype=p.dtype, device=p.device))
                for k, p in params.items()
            }
        )

    def names(self) -> set[str]:
        """The parameter names that have rates (the ones the inner loop adapts)."""
        return {k.replace("__", ".") for k in self.lrs}

    def functional(self, own: Mapping[str, Tensor]) -> InnerOptimizer:
        """The per-step SGD with the rates in ``own`` (``dict(self.named_parameters())``, possibly detached)."""
        rates = {k.removeprefix("lrs.").replace("__", "."): v for k, v in own.items()}  # name -> [steps]
        last = self.steps - 1

        def step(params: Params, grads: Params, t: int) -> tuple[Params, int]:
            i = min(t, last)
            return {k: p - rates[k][i] * grads[k] for k, p in params.items()}, t + 1

        return InnerOptimizer(lambda params: 0, step)


def get_inner_optimizer(inner_opt: str | InnerOptimizer | nn.Module | None, lr: float, **options) -> Any:
    """``inner_opt`` as given (a value or a module), ``sgd(lr)`` for None, or the registered one by name
    (``adam`` ...) built with ``lr`` and ``options``."""
    if inner_opt is None:
        return sgd(lr)
    if isinstance(inner_opt, str):
        return INNER_OPTIMIZERS.build(inner_opt, lr=lr, reserved=("lr",), **options)
    if isinstance(inner_opt, InnerOptimizer) or hasattr(inner_opt, "functional"):
        return inner_opt
    raise TypeError(f"inner_opt must be a name, an InnerOptimizer or a module with functional(), got {inner_opt!r}")
