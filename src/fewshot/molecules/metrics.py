"""Per-task ranking metrics of binary activity prediction, and their mean with a 95% interval."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    scores, labels = torch.as_tensor(scores).double().flatten(), torch.as_tensor(labels).flatten()
    if scores.shape != labels.shape:
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    positives = int((labels == 1).sum())
    if positives == 0 or positives == len(labels):
        raise ValueError("ranking metrics need both actives and inactives among the query labels")
    return scores, labels == 1


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve: P(score of an active > score of an inactive), ties counted half.

    scores, labels: [Q]; computed from average ranks (Mann-Whitney U).
    """
    scores, positive = _check(scores, labels)
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    values, inverse = torch.unique(scores, return_inverse=True)  # ties share their mean rank
    mean_rank = torch.zeros_like(values).index_add_(0, inverse, ranks) / torch.bincount(inverse).double()
    ranks = mean_rank[inverse]
    p, n = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - p * (p + 1) / 2) / (p * n))


def average_precision(scores: Tensor, labels: Tensor) -> float:
    """AUPRC as average precision: sum over score thresholds of (recall step) x precision.

    Tied scores form one threshold (as scikit-learn's ``average_precision_score``).
    """
    scores, positive = _check(scores, labels)
    order = scores.argsort(descending=True)
    scores, positive = scores[order], positive[order].double()
    tp, fp = positive.cumsum(0), (1 - positive).cumsum(0)
    last = torch.cat([scores[1:] != scores[:-1], torch.tensor([True])])  # end of each tie group
    tp, fp = tp[last], fp[last]
    precision, recall = tp / (tp + fp), tp / tp[-1]
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((steps * precision).sum())


def delta_auprc(scores: Tensor, labels: Tensor) -> float:
    """FS-Mol's metric: AUPRC minus the fraction of actives among the query labels."""
    return average_precision(scores, labels) - float((torch.as_tensor(labels) == 1).double().mean())


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of its normal 95% interval, 1.96 * sample std / sqrt(n)."""
    v = torch.as_tensor(list(values), dtype=torch.float64)
    if v.numel() == 0:
        return math.nan, math.nan
    ci = 0.0 if v.numel() < 2 else float(1.96 * v.std() / math.sqrt(v.numel()))
    return float(v.mean()), ci
