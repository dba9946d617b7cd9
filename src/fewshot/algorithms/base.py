"""The one interface every method implements: ``meta_loss`` to train, ``adapt`` to deploy."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from fewshot.data.episode import Episode

Predictor = Callable[[Tensor], Tensor]
"""Maps query_x [Q, ...] of one task to logits [Q, N] (or values [Q, D] for regression)."""


class Algorithm(nn.Module):
    """Abstract base of every meta-learning algorithm.

    ``meta_loss(episode)`` returns ``(loss, metrics)``: the mean loss over the
    episode's tasks, differentiable with respect to the algorithm's parameters, and
    a dict of floats with at least ``loss`` and (for classification) ``accuracy``.

    ``adapt(support_x, support_y)`` takes one task without its task axis
    (support_x [N*K, ...], support_y [N*K]) and returns a ``Predictor``; it never
    changes the algorithm's own parameters.
    """

    channels_last: bool = True
    """Whether the trainer should store 4-d weights channels-last (faster conv steps on CPU)."""

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        raise NotImplementedError

    def forward(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        """``meta_loss``, so that wrappers such as DistributedDataParallel see a forward."""
        return self.meta_loss(episode)
