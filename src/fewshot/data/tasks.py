"""Task families: sources of tasks that are not "images with class labels".

A regression function family (sinusoid), assays of molecules, RL tasks or optimizees: anything
with ``sample_tasks``. The sampler, the trainer and the learner spec tell a task family from a
labelled dataset by this protocol, not by the dataset's name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from fewshot.data.episode import Episode


@runtime_checkable
class TaskFamily(Protocol):
    """``sample_tasks(n, shots, queries, generator)``: ``n`` tasks as one ``Episode`` [n, ...].

    ``task`` says what the targets are: ``"regression"`` (float targets [n, M, D]) or
    ``"classification"`` (labels [n, M] in ``0..ways-1``)."""

    task: str

    def sample_tasks(self, n: int, shots: int, queries: int, generator: torch.Generator) -> Episode: ...


def is_task_family(data: object) -> bool:
    return isinstance(data, TaskFamily)
