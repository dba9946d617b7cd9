"""Deep ensembles of molecule learners: members trained apart, their probabilities averaged.

Each member adapts to the support set on its own; a query's class probabilities are the mean of
the members' (Lakshminarayanan et al. 2017). An ensemble is saved and loaded like any learner
(``methods.build_learner`` with ``{"algorithm": "ensemble", "members": [spec, ...]}``), so
evaluation, prediction and the service take it as they take one learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor
from fewshot.data.episode import Episode


class Ensemble(Algorithm):
    """Members adapt on the same support; ``adapt`` returns the log of their mean probabilities."""

    def __init__(self, members: Sequence[Algorithm]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = nn.ModuleList(members)

    @property
    def algorithms(self) -> list[Algorithm]:
        return [cast(Algorithm, m) for m in self.members]

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        raise TypeError("an ensemble is not trained as one; train its members, then join them")

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        predictors = [m.adapt(support_x, support_y) for m in self.algorithms]

        def predictor(query_x: Tensor) -> Tensor:
            p = torch.stack([f(query_x).softmax(-1) for f in predictors]).mean(0)  # [Q, C]
            return p.clamp_min(torch.finfo(p.dtype).tiny).log()  # [Q, C]: ranks as the mean probability

        return predictor


class Columns(nn.Module):
    """The columns ``start:stop`` of a [M, D] input: one member's part of concatenated embeddings."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: Tensor) -> Tensor:
        return x[..., self.start : self.stop]
