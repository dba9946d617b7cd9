"""Batch sources: what the trainer draws its training batches from.

Any object with ``next()`` and a ``generator`` (its randomness, saved with ``last/`` so that a
resumed run draws the same batches) is a ``BatchSource``: episodes from a labelled dataset or a
task family, supervised batches for pre-training, and later rollouts or optimizees.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from fewshot.data.sampler import EpisodeSampler
from fewshot.data.tasks import is_task_family
from fewshot.engine.config import TrainConfig


@runtime_checkable
class BatchSource(Protocol):
    generator: torch.Generator

    def next(self) -> Any: ...


class EpisodeBatches:
    """``meta_batch`` episodes at a time (``Episode`` [B, ...]) from a labelled dataset or a task family."""

    def __init__(self, data, config: TrainConfig) -> None:
        self.sampler = EpisodeSampler(data, config.ways, config.shots, config.queries, seed=config.seed)
        self.generator, self.meta_batch = self.sampler.generator, config.meta_batch

    def next(self):
        return self.sampler.sample(self.meta_batch)


class LabelledBatches:
    """``batch_size`` examples with their dataset-wide labels, drawn with replacement: ``(x [M, ...], y [M])``."""

    def __init__(self, data, config: TrainConfig) -> None:
        EpisodeSampler(data, config.ways, config.shots, config.queries)  # the same checks of the data
        self.data, self.batch_size = data, config.batch_size
        self.generator = torch.Generator().manual_seed(config.seed)

    def next(self):
        index = torch.randint(len(self.data), (self.batch_size,), generator=self.generator)
        return self.data.gather(index), self.data.labels[index]


def batch_source(algorithm, data, config: TrainConfig) -> BatchSource:
    """``data`` itself when it is a batch source; else supervised batches for algorithms that pre-train
    with ``supervised_loss`` (the fine-tuning baseline) on labelled data, episodes otherwise."""
    if isinstance(data, BatchSource):
        return data
    if hasattr(algorithm, "supervised_loss") and not is_task_family(data) and hasattr(data, "labels"):
        return LabelledBatches(data, config)
    return EpisodeBatches(data, config)
