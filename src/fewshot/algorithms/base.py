"""The one interface every method implements: ``meta_loss`` to train, ``adapt`` to deploy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from fewshot.data.episode import Episode
from fewshot.registry import BACKBONES, check_options

if TYPE_CHECKING:
    from fewshot.algorithms.spec import LearnerSpec

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

    fixed_ways: bool = False
    """Whether the learner only classifies tasks with as many classes as it was trained on (a fixed head)."""

    def amp_pays(self) -> bool:
        """Whether bfloat16 autocast was measured to speed up this learner's training on a CPU with
        AMX and to leave its accuracy unchanged; the trainer's ``amp`` setting turns it on there by
        default (docs/speed.md section 4). Learners not measured say no."""
        return False

    @classmethod
    def from_spec(cls, spec: LearnerSpec) -> Algorithm:
        """A freshly initialised learner for ``spec``. By default an embedding method:
        ``cls(encoder, **spec.algorithm_options)`` with the spec's backbone as the encoder."""
        if spec.task != "classification":
            raise ValueError(f"{spec.algorithm} is a classification method; use a gradient-based method for regression")
        return cls(backbone_for(spec), **checked_options(cls, spec, "encoder"))

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        raise NotImplementedError

    def predict_episode(self, episode: Episode) -> Tensor | None:
        """Query predictions [B, N*Q, ...] of every task of ``episode``, each task adapted on its
        own support set with the values ``adapt`` gives, in fewer, larger calls: the batched path
        of the evaluation (``engine.evaluate``). ``None`` where the learner has no such path in
        its present mode; the evaluation then adapts task by task."""
        return None

    def forward(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        """``meta_loss``, so that wrappers such as DistributedDataParallel see a forward."""
        return self.meta_loss(episode)


def backbone_for(spec: LearnerSpec, num_classes: int | None = None) -> nn.Module:
    """The spec's backbone for its input shape (with a ``num_classes`` head when given)."""
    backbone = BACKBONES.get(spec.backbone)
    provided = ("num_classes", *backbone.shape_options(spec.input_shape))  # what the data's shape decides
    check_options(backbone, spec.backbone_options, f"backbone {spec.backbone!r}", provided)
    return backbone.for_input(spec.input_shape, num_classes, **spec.backbone_options)


def checked_options(cls: type, spec: LearnerSpec, *reserved: str) -> dict[str, Any]:
    """``spec.algorithm_options`` after one clear error for any that ``cls`` does not take."""
    check_options(cls, spec.algorithm_options, f"algorithm {spec.algorithm!r}", reserved)
    return dict(spec.algorithm_options)
