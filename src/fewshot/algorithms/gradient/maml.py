"""MAML (Finn et al., 2017) and its first-order variant FOMAML."""

from __future__ import annotations

from torch import nn

from fewshot.algorithms.gradient.common import GradientAlgorithm


class MAML(GradientAlgorithm):
    """Model-Agnostic Meta-Learning.

    Per task: ``inner_steps`` SGD steps ``theta <- theta - inner_lr * grad`` on the mean
    support loss (cross-entropy, or MSE for float targets), then the mean query loss at
    the adapted parameters; ``meta_loss`` is its mean over tasks. The gradient of that
    loss with respect to the model's parameters is the exact second-order meta-gradient
    (``first_order=True`` detaches the inner gradients). See ``GradientAlgorithm`` for
    ``task``, ``bn``, ``task_batching``, ``compile`` and ``adapt_steps``.
    """

    def __init__(
        self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, first_order: bool = False, **settings
    ) -> None:
        super().__init__(model, inner_lr, inner_steps, first_order=first_order, **settings)


class FOMAML(GradientAlgorithm):
    """First-order MAML: MAML with the inner gradients detached (``first_order=True``)."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, **settings) -> None:
        super().__init__(model, inner_lr, inner_steps, first_order=True, **settings)
