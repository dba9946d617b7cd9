"""Relation Networks (Sung et al., 2018): a learned comparison of feature maps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor, checked_options
from fewshot.algorithms.episode_math import (
    class_means,
    class_sums,
    classification_metrics,
    embed_episode,
    frozen_forward,
    one_hot,
    task_ways,
)
from fewshot.algorithms.spec import LearnerSpec
from fewshot.data.episode import Episode
from fewshot.nn.feature_maps import Conv4Maps, conv_bn_relu

AGGREGATES = ("sum", "mean")
BN_MODES = ("running", "batch")


class RelationModule(nn.Module):
    """The paper's relation module, scoring every (class, query) pair of feature maps:
    classes [B, N, C, h, w], queries [B, Q, C, h, w] -> scores [B, Q, N] in [0, 1].

    A pair is the channel concatenation (class first, then query) [2C, h, w], passed through
    2 x conv3x3(hidden)-BN-ReLU-maxpool2 (pooling skipped where the map is already 1 wide),
    then FC(units)-ReLU-FC(1)-sigmoid. A convolution is linear in its input channels, so the
    first one of a pair is conv(class, W[:, :C]) + conv(query, W[:, C:]): it runs on the
    N + Q maps and the N*Q pairs are formed by a broadcast sum (exact; the paper's code
    convolves every concatenated pair, 5x-20x the work of the whole encoder).
    """

    def __init__(self, feature_shape: Sequence[int], hidden: int = 64, units: int = 8) -> None:
        super().__init__()
        c, h, w = feature_shape
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(conv_bn_relu(2 * c if i == 0 else hidden, hidden))
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(hidden * h * w, units), nn.ReLU(), nn.Linear(units, 1))

    def forward(self, classes: Tensor, queries: Tensor) -> Tensor:
        (b, n, c), q = classes.shape[:3], queries.shape[1]
        first: nn.Sequential = self.convs[0]  # type: ignore[assignment]  # conv | BN-ReLU of the first block
        conv: nn.Conv2d = first[0]  # type: ignore[assignment]
        rest = first[1:]
        weight, options = conv.weight, dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
        left = F.conv2d(classes.flatten(0, 1), weight[:, :c], conv.bias, **options)  # type: ignore[call-overload]
        right = F.conv2d(queries.flatten(0, 1), weight[:, c:], None, **options)  # type: ignore[call-overload]
        # left [B*N, hidden, h, w], right [B*Q, hidden, h, w]
        pairs = right.unflatten(0, (b, q, 1)) + left.unflatten(0, (b, 1, n))  # [B, Q, N, hidden, h, w]
        x = self.convs[1:](rest(pairs.flatten(0, 2)))  # [B*Q*N, hidden, h', w']
        return torch.sigmoid(self.fc(x)).view(b, q, n)


class RelationNet(Algorithm):
    """Scores each (class, query) pair with a learned relation module; trained with MSE
    of the scores against one-hot targets, as in the paper. ``logits`` are the scores.

    The encoder must produce feature maps [M, C, h, w] (e.g. ``Conv4Maps``, not the
    flattening ``fewshot.nn.Conv4``). A class's map is the ``aggregate`` ("sum", the
    paper's choice for K > 1, or "mean") of its support maps; ``relation_module(classes
    [B, N, C, h, w], queries [B, Q, C, h, w])`` scores every pair [B, Q, N].

    Without ``relation_module`` the paper's module (``RelationModule``) is built for
    ``feature_shape`` (C, h, w), which defaults to ``encoder.out_shape``.

    ``bn`` is the BatchNorm of ``adapt`` (evaluation and prediction): ``"running"`` uses the
    running statistics (inductive); ``"batch"`` the statistics of the support set, of the
    query set and of their pairs, each for its own forward (transductive, as the authors'
    code, which never switches to eval mode).
    """

    def __init__(
        self,
        encoder: nn.Module,
        relation_module: nn.Module | None = None,
        *,
        feature_shape: Sequence[int] | None = None,
        aggregate: str = "sum",
        bn: str = "running",
    ) -> None:
        super().__init__()
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; valid: {', '.join(AGGREGATES)}")
        if bn not in BN_MODES:
            raise ValueError(f"unknown bn {bn!r}; valid: {', '.join(BN_MODES)}")
        if relation_module is None:
            feature_shape = feature_shape if feature_shape is not None else getattr(encoder, "out_shape", None)
            if feature_shape is None or len(feature_shape) != 3:
                raise ValueError(
                    "RelationNet needs feature maps: pass feature_shape=(C, h, w), an encoder with "
                    "out_shape (e.g. Conv4Maps), or a relation_module"
                )
            relation_module = RelationModule(feature_shape)
        self.encoder = encoder
        self.relation = relation_module
        self.aggregate = aggregate
        self.bn = bn

    @classmethod
    def from_spec(cls, spec: LearnerSpec) -> RelationNet:
        """The paper's feature-map Conv4 (``backbone: conv4``) and relation module."""
        if spec.backbone != "conv4":
            raise ValueError("relation uses the paper's Conv4 feature maps; set backbone to conv4")
        options = checked_options(cls, spec, "encoder")
        return cls(Conv4Maps.for_input(spec.input_shape, **spec.backbone_options), **options)

    def class_maps(self, support_z: Tensor, support_y: Tensor, ways: int) -> Tensor:
        """Support maps [B, S, C, h, w] -> one map per class [B, N, C, h, w]."""
        if self.aggregate == "mean":
            return class_means(support_z, support_y, ways)
        return class_sums(support_z, support_y, ways)[0]

    def scores(
        self, support_z: Tensor, support_y: Tensor, query_z: Tensor, ways: int, relation: Callable | None = None
    ) -> Tensor:
        """Relation scores [B, Q, N] in [0, 1] for maps [B, S, C, h, w] and queries [B, Q, C, h, w].
        ``relation`` replaces ``self.relation`` for the call (``adapt`` passes a buffer-safe one)."""
        if support_z.dim() != 5:
            raise ValueError(f"RelationNet needs encoder feature maps [M, C, h, w], got {tuple(support_z.shape[1:])}")
        classes = self.class_maps(support_z, support_y, ways)  # [B, N, C, h, w]
        return (relation or self.relation)(classes, query_z)  # [B, Q, N]

    def logits(self, episode: Episode) -> Tensor:
        """Relation scores [B, N*Q, N] of every task of ``episode``."""
        support_z, query_z = embed_episode(self.encoder, episode)
        return self.scores(support_z, episode.support_y, query_z, episode.ways)

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        scores = self.logits(episode)  # [B, NQ, N]
        loss = F.mse_loss(scores, one_hot(episode.query_y, scores.shape[-1], scores.dtype))
        return loss, classification_metrics(loss, scores, episode.query_y)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        ways, batch_stats = task_ways(support_y), self.bn == "batch"
        with torch.no_grad():
            support_z = frozen_forward(self.encoder, support_x, batch_stats=batch_stats)[None]  # [1, NK, C, h, w]

        def predict(query_x: Tensor) -> Tensor:
            with torch.no_grad():
                query_z = frozen_forward(self.encoder, query_x, batch_stats=batch_stats)[None]  # [1, Q, C, h, w]
                relation = partial(frozen_forward, self.relation, batch_stats=batch_stats)
                return self.scores(support_z, support_y[None], query_z, ways, relation)[0]  # [Q, N]

        return predict
