"""ANIL, "Almost No Inner Loop" (Raghu et al., 2020): MAML that adapts only the head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from fewshot.algorithms.gradient.maml import MAML
from fewshot.functional import call, strip
from fewshot.functional.params import Params
from fewshot.nn.backbones import Backbone


def _head_prefixes(model: nn.Module, head: str | nn.Module | Sequence[str]) -> tuple[str, ...]:
    if isinstance(head, nn.Module):
        names = [name for name, m in model.named_modules() if m is head]
        if not names or not names[0]:
            raise ValueError("ANIL: head must be a submodule of the model")
        return (names[0],)
    prefixes = (head,) if isinstance(head, str) else tuple(head)
    found = [k for k, _ in model.named_parameters() if any(k == p or k.startswith(p + ".") for p in prefixes)]
    if not found:
        raise ValueError(f"ANIL: no parameters under {prefixes} in the model")
    return prefixes


class ANIL(MAML):
    """MAML whose inner loop adapts only ``head`` (a submodule, its name, or several names);
    the body is trained by the outer loop only.

    On a ``fewshot.nn`` backbone with ``head="head"`` the body runs once per task and the
    inner loop touches only the linear head (the same values, much cheaper); any other
    model runs its full forward at every inner step.
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        *,
        head: str | nn.Module | Sequence[str] = "head",
        first_order: bool = False,
        **settings,
    ) -> None:
        if settings.get("per_step_bn"):
            raise ValueError("ANIL adapts only the head; per_step_bn (per-step BatchNorm of the body) does not apply")
        # before the base class builds a learned inner optimizer (lslr) on the parameters _is_fast picks
        self.head_prefixes = _head_prefixes(model, head)
        super().__init__(model, inner_lr, inner_steps, first_order=first_order, **settings)
        self.split_forward = (
            isinstance(model, Backbone)
            and type(model).forward is Backbone.forward
            and model.head is not None
            and self.head_prefixes == ("head",)
        )

    def _is_fast(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.head_prefixes)

    def _embed(self, params: Params, buffers: Mapping, x: Tensor) -> Tensor:
        if not self.split_forward:
            return x
        features: nn.Module = self.model.features  # type: ignore[assignment]  # a fewshot.nn Backbone's
        return call(features, strip(params, "features"), strip(buffers, "features"), x)  # type: ignore[arg-type]

    def _predict(self, params: Params, buffers: Mapping, z: Tensor) -> Tensor:
        if not self.split_forward:
            return call(self.model, params, buffers, z)
        head: nn.Module = self.model.head  # type: ignore[assignment]
        return call(head, strip(params, "head"), strip(buffers, "head"), z)  # type: ignore[arg-type]
