"""The sinusoid regression task family of the MAML paper (Finn et al., 2017)."""

from __future__ import annotations

import math

import torch

from fewshot.data.episode import Episode


class Sinusoid:
    """Tasks ``y = A sin(x - phase)`` with A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5].

    A task family rather than a labelled dataset: ``EpisodeSampler`` asks it for
    tasks through ``sample_tasks``; ``ways`` is meaningless here (use 1).
    """

    task = "regression"
    num_classes = 0

    def __init__(self, amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range
        self.labels = torch.empty(0, dtype=torch.long)

    def sample_tasks(self, batch_size: int, shots: int, queries: int, generator: torch.Generator) -> Episode:
        """``batch_size`` tasks with ``shots`` support and ``queries`` query points each.

        x, y: [B, shots, 1] and [B, queries, 1]
        """

        def uniform(shape, bounds):
            low, high = bounds
            return low + (high - low) * torch.rand(shape, generator=generator)

        amplitude = uniform((batch_size, 1, 1), self.amplitude)
        phase = uniform((batch_size, 1, 1), self.phase)
        x = uniform((batch_size, shots + queries, 1), self.x_range)
        y = amplitude * torch.sin(x - phase)
        return Episode(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"Sinusoid(amplitude={self.amplitude}, phase={self.phase}, x_range={self.x_range})"


def load_sinusoid(
    root=None, split: str = "train", *, amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)
) -> Sinusoid:
    """The sinusoid task family; every split draws from the same family, the seeds tell them apart."""
    if split not in ("train", "val", "test", "trainval"):
        raise ValueError(f"unknown split {split!r}; valid splits: train, val, test, trainval")
    return Sinusoid(amplitude, phase, x_range)
