"""Meta-SGD (Li et al., 2017): MAML with a learned learning rate for every weight."""

from __future__ import annotations

import torch
from torch import nn

from fewshot.algorithms.gradient.maml import MAML
from fewshot.optim.inner import LearnedRates


class MetaSGD(MAML):
    """MAML whose inner optimizer is ``LearnedRates``: the step ``theta - alpha * grad`` with ``alpha``
    a tensor shaped like each adapted weight, initialised to ``inner_lr`` and meta-trained with
    ``theta``. The same as ``MAML(model, inner_opt=LearnedRates(params, inner_lr))``; the class names it
    for the registry and checkpoints (the rates are saved as ``inner_opt.lrs.*``)."""

    def __init__(
        self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, first_order: bool = False, **settings
    ) -> None:
        if settings.get("lslr") or settings.get("inner_opt") is not None:
            raise ValueError("Meta-SGD's inner optimizer is its per-weight rates; lslr and inner_opt do not apply")
        super().__init__(model, inner_lr, inner_steps, first_order=first_order, **settings)
        self.inner_opt = LearnedRates(self.fast_parameters(), inner_lr)

    @property
    def lrs(self) -> nn.ParameterDict:
        """The rates, keyed by parameter name with dots written ``__``."""
        return self.inner_opt.lrs

    def learning_rates(self) -> dict[str, torch.Tensor]:
        """``parameter name -> its learning-rate tensor``."""
        return {k.replace("__", "."): v for k, v in self.lrs.items()}
