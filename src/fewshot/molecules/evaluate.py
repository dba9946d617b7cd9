"""Score a method on protocol episodes: ROC-AUC and delta-AUPRC per task, mean over tasks with 95% CIs."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fewshot.molecules.metrics import delta_auprc, mean_ci95, roc_auc
from fewshot.molecules.protocols import EvalEpisode
from fewshot.molecules.tasks import check_support

Scorer = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(support_x [S, D], support_y [S], query_x [Q, D]) -> activity scores [Q] (higher = more likely active)."""


def as_scorer(method) -> Scorer:
    """A scorer from an algorithm with ``adapt`` (score = logit of active minus inactive) or a function."""
    if hasattr(method, "adapt"):

        def score(support_x, support_y, query_x):
            check_support(support_y)
            logits = method.adapt(support_x, support_y)(query_x)  # [Q, 2]
            return logits[:, 1] - logits[:, 0]

        return score
    if callable(method):
        return method
    raise TypeError("a method is an algorithm with .adapt or a function (support_x, support_y, query_x) -> scores")


@dataclass
class SizeResult:
    """Results at one support size: per task the mean over draws; ``ci95`` over draws
    (each draw's mean over tasks), ``ci95_tasks`` over the per-task means."""

    support_size: int
    per_task: dict[str, dict[str, float]] = field(repr=False)
    per_draw: dict[str, list[float]] = field(repr=False)

    def summary(self, metric: str) -> dict:
        tasks = [v[metric] for v in self.per_task.values()]
        mean, ci_tasks = mean_ci95(tasks)
        _, ci_draws = mean_ci95(self.per_draw[metric])
        return {"mean": mean, "ci95": ci_draws, "ci95_tasks": ci_tasks}

    def to_dict(self) -> dict:
        return {
            "support_size": self.support_size,
            "tasks": len(self.per_task),
            "roc_auc": self.summary("roc_auc"),
            "delta_auprc": self.summary("delta_auprc"),
        }


def evaluate_protocol(
    method, episodes: Iterable[EvalEpisode], progress: Callable | None = None, device: torch.device | str | None = None
) -> dict[int, SizeResult]:
    """Run ``method`` on every episode (moved to ``device``, the method's, if given); ``{support_size: SizeResult}``."""
    scorer = as_scorer(method)
    scores: dict[int, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    started = time.perf_counter()
    for i, e in enumerate(episodes):
        ep = e.episode if device is None else e.episode.to(device)
        with torch.no_grad():
            s = scorer(ep.support_x[0], ep.support_y[0], ep.query_x[0]).cpu()  # [Q]
        y = e.episode.query_y[0]
        scores[e.support_size][e.task][e.draw] = {"roc_auc": roc_auc(s, y), "delta_auprc": delta_auprc(s, y)}
        if progress is not None:
            progress(i + 1, time.perf_counter() - started)
    out = {}
    for size, by_task in scores.items():
        per_task = {
            t: {m: sum(d[m] for d in draws.values()) / len(draws) for m in ("roc_auc", "delta_auprc")}
            for t, draws in by_task.items()
        }
        draws = sorted({d for draws in by_task.values() for d in draws})
        per_draw = {
            m: [mean_ci95([v[d][m] for v in by_task.values() if d in v])[0] for d in draws]
            for m in ("roc_auc", "delta_auprc")
        }
        out[size] = SizeResult(size, per_task, per_draw)
    return dict(sorted(out.items()))
