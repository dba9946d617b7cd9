"""The Episode: a batch of few-shot tasks with a leading task axis."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class Episode:
    """Tensors of ``B`` tasks; labels are remapped to ``0..N-1`` within each task.

    support_x: [B, N*K, ...]   support_y: [B, N*K]
    query_x:   [B, N*Q, ...]   query_y:   [B, N*Q]

    For regression task families the targets are float values ([B, K, D]).
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def __post_init__(self) -> None:
        b = self.support_x.shape[0]
        for f in fields(self):
            t = getattr(self, f.name)
            if not isinstance(t, Tensor) or t.dim() < 2 or t.shape[0] != b:
                raise ValueError(f"Episode.{f.name} must be a tensor with leading task axis {b}")
        if self.support_x.shape[1] != self.support_y.shape[1]:
            raise ValueError("support_x and support_y disagree on the number of examples")
        if self.query_x.shape[1] != self.query_y.shape[1]:
            raise ValueError("query_x and query_y disagree on the number of examples")

    @property
    def batch_size(self) -> int:
        return self.support_x.shape[0]

    @property
    def ways(self) -> int:
        """Number of classes per task (classification episodes)."""
        return int(self.support_y.max()) + 1

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Episode:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Episode:
        return self._map(Tensor.pin_memory)

    def task(self, i: int) -> Episode:
        """Task ``i`` as an episode of one task (B = 1)."""
        return self._map(lambda t: t[i : i + 1])

    def tasks(self) -> list[Episode]:
        return [self.task(i) for i in range(self.batch_size)]

    def split(self, chunks: int) -> list[Episode]:
        """Split the task axis into ``chunks`` nearly equal episodes."""
        parts = [torch.tensor_split(getattr(self, f.name), chunks) for f in fields(self)]
        return [Episode(*p) for p in zip(*parts)]

    @staticmethod
    def cat(episodes: list[Episode]) -> Episode:
        """Join episodes of same-sized tasks along the task axis."""
        if len(episodes) == 1:
            return episodes[0]
        names = [f.name for f in fields(Episode)]
        return Episode(*(torch.cat([getattr(e, n) for e in episodes]) for n in names))

    def _map(self, fn) -> Episode:
        return Episode(*(fn(getattr(self, f.name)) for f in fields(self)))
