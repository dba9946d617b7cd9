"""MAML++ (Antoniou et al., 2019, "How to train your MAML"): the pieces that are options of every
gradient algorithm (``GradientAlgorithm``) rather than a method of their own.

- LSLR, learned per-layer per-step inner rates: ``lslr=True``, the inner optimizer
  ``fewshot.optim.PerStepRates``.
- The multi-step loss: ``multi_step_loss=N`` (:func:`msl_weights`).
- Derivative-order annealing: ``second_order_from=N``.
- Per-step BatchNorm weights, biases and running statistics: ``per_step_bn=True`` (:class:`PerStepNorm`).
- Cosine annealing of the outer rate: the trainer's ``schedule: cosine`` (``fewshot.engine.optimizers``).

The presets ``omniglot-mamlpp-*`` put them together with the paper's settings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from fewshot.functional.params import Params, batch_norm_modules

MSL_FLOOR = 0.03
"""The multi-step loss's final weight of every step but the last, times the number of steps."""


def msl_weights(steps: int, progress: float) -> list[float]:
    """MAML++'s multi-step loss weights [steps] at ``progress`` (0 to 1) through their annealing: uniform
    ``1/steps`` at 0; every weight but the last decays linearly to ``0.03/steps`` at 1 and the last takes
    the rest (the schedule of the paper's code, there in epochs, here in meta-steps)."""
    if steps < 1:
        raise ValueError(f"the multi-step loss needs inner steps, got {steps}")
    progress = min(max(progress, 0.0), 1.0)
    floor = MSL_FLOOR / steps
    early = max(1.0 / steps - progress / steps, floor)
    last = min(1.0 / steps + progress * (steps - 1) / steps, 1.0 - (steps - 1) * floor)
    return [early] * (steps - 1) + [last]


def _key(name: str) -> str:
    return name.replace(".", "__")  # parameter and buffer names cannot contain dots


class PerStepNorm(nn.Module):
    """Per-step BatchNorm of MAML++ for every BatchNorm layer of ``model``: a weight and a bias per inner
    step (``weight``, ``bias``: [steps, C] per layer, initialised from the layer's own), learned by the outer
    loop only, and with ``statistics`` running mean and variance per step (buffers ``<layer>__mean``,
    ``<layer>__var``: [steps, C]). At inner step ``i`` they stand in for the layer's own; steps past
    ``steps`` reuse the last step's."""

    def __init__(self, model: nn.Module, steps: int, statistics: bool = False) -> None:
        super().__init__()
        layers = batch_norm_modules(model)
        if not layers:
            raise ValueError("per_step_bn needs BatchNorm layers in the model")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"per_step_bn needs inner_steps >= 1, got {steps!r}")
        for name, m in layers.items():
            if m.weight is None or m.bias is None:
                raise ValueError(f"per_step_bn: BatchNorm layer {name!r} has no weight and bias (affine=False)")
            if statistics and m.momentum is None:
                raise ValueError(
                    f"per_step_bn: BatchNorm layer {name!r} needs a momentum (not None) for its statistics"
                )
        self.steps, self.statistics = steps, statistics
        self.layers = list(layers)
        self.momentum = {name: float(m.momentum or 0.0) for name, m in layers.items()}
        self.weight = nn.ParameterDict({_key(n): nn.Parameter(_rows(m.weight, steps)) for n, m in layers.items()})
        self.bias = nn.ParameterDict({_key(n): nn.Parameter(_rows(m.bias, steps)) for n, m in layers.items()})
        if statistics:
            for n, m in layers.items():
                c = m.num_features
                mean = m.running_mean if m.running_mean is not None else m.weight.new_zeros(c)
                var = m.running_var if m.running_var is not None else m.weight.new_ones(c)
                self.register_buffer(f"{_key(n)}__mean", _rows(mean, steps))  # [steps, C]
                self.register_buffer(f"{_key(n)}__var", _rows(var, steps))  # [steps, C]

    def names(self) -> set[str]:
        """The model's parameters that these replace: every BatchNorm layer's weight and bias."""
        return {f"{n}.{p}" for n in self.layers for p in ("weight", "bias")}

    def own(self, detached: bool = False) -> dict[str, Tensor]:
        """Parameters and buffers by name, as :meth:`at_step` takes them."""
        own = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        return {k: v.detach() for k, v in own.items()} if detached else own

    def at_step(self, own: Mapping[str, Tensor], step: int, statistics: bool) -> tuple[Params, dict]:
        """The model's BatchNorm parameters and buffers at inner step ``step`` (clamped to 0 .. steps - 1):
        the step's weight and bias, and its running statistics where ``statistics`` (else ``None``: the
        layers normalise with their batch's statistics)."""
        i = min(max(step, 0), self.steps - 1)
        params: Params = {}
        buffers: dict[str, Tensor | None] = {}
        for n in self.layers:
            k = _key(n)
            params[f"{n}.weight"], params[f"{n}.bias"] = own[f"weight.{k}"][i], own[f"bias.{k}"][i]  # [C] each
            use = statistics and self.statistics
            buffers[f"{n}.running_mean"] = own[f"{k}__mean"][i] if use else None
            buffers[f"{n}.running_var"] = own[f"{k}__var"][i] if use else None
            buffers[f"{n}.num_batches_tracked"] = None
        return params, buffers

    @contextlib.contextmanager
    def recording(self, model: nn.Module) -> Iterator[dict[str, tuple[Tensor, Tensor]]]:
        """While active, every forward of ``model``'s BatchNorm layers records the mean and (unbiased)
        variance of its input over all but the channel axis ([C] each, detached), by layer name."""
        seen: dict[str, tuple[Tensor, Tensor]] = {}
        modules = dict(model.named_modules())

        def hook(name: str):
            def record(module: nn.Module, args: tuple) -> None:
                x = args[0].detach()  # [M, C, ...]
                dims = [0, *range(2, x.dim())]
                seen[name] = (x.mean(dims), x.var(dims, unbiased=True))

            return record

        handles = [modules[n].register_forward_pre_hook(hook(n)) for n in self.layers]
        try:
            yield seen
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def update(self, mean: Mapping[str, Tensor], var: Mapping[str, Tensor]) -> None:
        """One momentum step of every layer's running statistics towards batch statistics ``mean``, ``var``
        ([steps, C] per layer), as BatchNorm's own update: ``(1 - momentum) * running + momentum * batch``."""
        for n in self.layers:
            k, m = _key(n), self.momentum[n]
            getattr(self, f"{k}__mean").lerp_(mean[n].to(getattr(self, f"{k}__mean").dtype), m)
            getattr(self, f"{k}__var").lerp_(var[n].to(getattr(self, f"{k}__var").dtype), m)


def _rows(t: Tensor, steps: int) -> Tensor:
    """``t`` [C] repeated to [steps, C] (a new tensor)."""
    return t.detach().unsqueeze(0).repeat(steps, 1)
