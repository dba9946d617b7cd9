"""The field's evaluation protocol: mean and 95% confidence interval over fixed episodes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm
from fewshot.data.episode import Episode
from fewshot.data.sampler import EpisodeSampler
from fewshot.data.tasks import is_task_family

PredictFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (support_x, support_y, query_x) -> logits


@dataclass
class EvalResult:
    """``mean`` of ``metric`` ("accuracy" or "mse") over ``episodes`` tasks, with
    ``ci95 = 1.96 * std / sqrt(episodes)`` (sample std, ddof=1)."""

    metric: str
    mean: float
    ci95: float
    per_episode: list[float] = field(repr=False)
    episodes: int = 0
    ways: int | tuple | None = None
    shots: int | tuple | None = None
    queries: int | None = None

    @property
    def accuracy(self) -> float:
        if self.metric != "accuracy":
            raise AttributeError(f"this result measures {self.metric}, not accuracy")
        return self.mean

    def to_dict(self) -> dict:
        out = asdict(self)
        out[self.metric] = out.pop("mean")
        return out

    def __str__(self) -> str:
        if self.metric == "accuracy":
            return f"accuracy {100 * self.mean:.2f}% +- {100 * self.ci95:.2f}% (95% CI, {self.episodes} episodes)"
        return f"{self.metric} {self.mean:.4f} +- {self.ci95:.4f} (95% CI, {self.episodes} episodes)"


def confidence_interval(values: Tensor) -> float:
    """Half-width of the normal 95% interval of the mean: 1.96 * std / sqrt(n)."""
    n = values.numel()
    return 0.0 if n < 2 else float(1.96 * values.std() / math.sqrt(n))


BATCHED_EXAMPLES = 400
"""Examples (support and query) per batched evaluation call; see ``batched_tasks``."""


def batched_tasks(sampler: EpisodeSampler) -> int:
    """Tasks per evaluation episode for learners with a batched path: about ``BATCHED_EXAMPLES``
    examples per call (5 tasks of 5-way 1-shot 15-query), 1 for variable-sized episodes."""
    if not sampler.fixed_size or is_task_family(sampler.dataset):
        return 1
    ways, shots = sampler.ways[0], sampler.shots[0]
    return max(1, BATCHED_EXAMPLES // (ways * (shots + sampler.queries)))


def has_batched_path(learner) -> bool:
    """Whether ``learner`` overrides ``Algorithm.predict_episode`` (scores several tasks per call)."""
    own = getattr(type(learner), "predict_episode", None)
    return own is not None and own is not Algorithm.predict_episode


def _predict_fn(learner) -> PredictFn:
    if hasattr(learner, "adapt"):
        return lambda sx, sy, qx: learner.adapt(sx, sy)(qx)
    if callable(learner):
        return learner
    raise TypeError("evaluate needs an algorithm with .adapt or a function (support_x, support_y, query_x) -> logits")


def task_score(prediction: Tensor, query_y: Tensor) -> tuple[str, float]:
    """Accuracy of logits [Q, N] against labels [Q], or MSE of values against float targets."""
    if query_y.is_floating_point():
        return "mse", float(((prediction - query_y) ** 2).mean())
    return "accuracy", float((prediction.argmax(-1) == query_y).float().mean())


def _batched_predictions(learner, episode: Episode) -> Tensor | None:
    """The learner's batched predictions [B, N*Q, ...] of the episode's queries, without autograd,
    or None where it has no batched path (see ``Algorithm.predict_episode``)."""
    if episode.batch_size == 1 or not hasattr(learner, "predict_episode"):
        return None
    with torch.inference_mode():
        return learner.predict_episode(episode)


def evaluate_episodes(learner, episodes: Iterable[Episode], **info) -> EvalResult:
    """Score ``learner`` on every task of ``episodes`` (adapt on support, predict query).

    Learners with a batched path (``predict_episode``, e.g. ProtoNet in eval mode) predict all
    tasks of an episode at once, without autograd; the others adapt task by task."""
    predict = _predict_fn(learner)
    was_training = isinstance(learner, nn.Module) and learner.training
    if isinstance(learner, nn.Module):
        learner.eval()
    metric, scores = "accuracy", []
    try:
        for episode in episodes:
            batched = _batched_predictions(learner, episode)  # [B, N*Q, ...] or None
            for i in range(episode.batch_size):
                sx, sy = episode.support_x[i], episode.support_y[i]
                qx, qy = episode.query_x[i], episode.query_y[i]
                prediction = predict(sx, sy, qx) if batched is None else batched[i]
                metric, score = task_score(prediction.detach(), qy)
                scores.append(score)
    finally:
        if was_training:
            learner.train()
    values = torch.tensor(scores, dtype=torch.float64)
    if values.numel() == 0:
        raise ValueError("no evaluation episodes")
    return EvalResult(metric, float(values.mean()), confidence_interval(values), scores, len(scores), **info)


def evaluate(
    learner,
    dataset,
    ways: int | tuple[int, int],
    shots: int | tuple[int, int],
    queries: int = 15,
    episodes: int = 600,
    seed: int = 0,
    *,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
    drop_small_classes: bool = False,
) -> EvalResult:
    """Mean accuracy (or MSE) and 95% CI of ``learner`` over ``episodes`` fixed tasks.

    ``learner`` is an algorithm (``adapt(support_x, support_y) -> predictor``) or a
    function ``(support_x, support_y, query_x) -> logits``. The same seed gives the
    same tasks, hence the same numbers, on every run, whatever ``batch_size`` (tasks per
    episode; default: ``batched_tasks`` for learners with a batched path on an accelerator, else 1:
    on CPU the batched path measured no faster than task by task, docs/speed.md).
    """
    sampler = EpisodeSampler(
        dataset, ways, shots, queries, seed=seed, device=device, drop_small_classes=drop_small_classes
    )
    if batch_size is None:
        on = torch.device(device) if device is not None else getattr(getattr(dataset, "data", None), "device", None)
        accelerator = on is not None and on.type != "cpu"
        batch_size = batched_tasks(sampler) if accelerator and has_batched_path(learner) else 1
    tasks = sampler.episodes(episodes, batch_size=batch_size if sampler.fixed_size else 1)
    return evaluate_episodes(learner, tasks, ways=ways, shots=shots, queries=queries)
