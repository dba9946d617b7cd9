"""Meta-SGD (Li et al., 2017): MAML with a learned learning rate for every weight."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fewshot.algorithms.gradient.common import GradientAlgorithm
from fewshot.functional import InnerOptimizer, sgd


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot contain dots


class MetaSGD(GradientAlgorithm):
    """Inner step ``theta - alpha * grad`` with ``alpha`` a tensor shaped like each
    trainable weight, initialised to ``inner_lr`` and meta-trained with ``theta``
    (``self.lrs``, keyed by parameter name with dots written ``__``)."""

    def __init__(
        self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, first_order: bool = False, **settings
    ) -> None:
        super().__init__(model, inner_lr, inner_steps, first_order=first_order, **settings)
        self.lrs = nn.ParameterDict(
            {
                _key(k): nn.Parameter(torch.full_like(p.detach(), float(inner_lr)))
                for k, p in model.named_parameters()
                if p.requires_grad and k not in self.outer_only
            }
        )

    def _is_fast(self, name: str) -> bool:
        return _key(name) in self.lrs

    def learning_rates(self) -> dict[str, torch.Tensor]:
        """``parameter name -> its learning-rate tensor``."""
        return {k: self.lrs[_key(k)] for k, p in self.model.named_parameters() if _key(k) in self.lrs}

    def _extra_state(self, detached: bool) -> dict[str, Any]:
        lrs = self.learning_rates()
        return {"lrs": {k: v.detach() for k, v in lrs.items()} if detached else lrs}

    def _optimizer(self, state: Mapping[str, Any]) -> InnerOptimizer:
        return sgd(state["lrs"])
