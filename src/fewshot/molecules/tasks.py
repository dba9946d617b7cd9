"""Assays as a task family: episodes of K actives + K inactives per task, for meta-training."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fewshot.data.episode import Episode
from fewshot.molecules.features import Features

logger = logging.getLogger(__name__)


@dataclass
class AssayTask:
    """One assay: its measured molecules' features (``take(index)``) and labels [m] (0 inactive, 1 active)."""

    name: str
    features: Features = field(repr=False)
    labels: Tensor = field(repr=False)

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels).long()
        if len(self.labels) != len(self.features):
            raise ValueError(f"assay {self.name!r}: {len(self.labels)} labels for {len(self.features)} molecules")
        bad = ~((self.labels == 0) | (self.labels == 1))
        if bad.any():
            raise ValueError(f"assay {self.name!r}: labels must be 0 or 1, got {self.labels[bad][:3].tolist()}")
        self.actives = (self.labels == 1).nonzero().flatten()  # [P]
        self.inactives = (self.labels == 0).nonzero().flatten()  # [N]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def fraction_active(self) -> float:
        return len(self.actives) / max(len(self.labels), 1)

    def gather(self, index: Tensor, atoms: int | None = None) -> Tensor:
        """Features of molecules ``index`` [n] -> float [n, D]."""
        return self.features.take(index, atoms)


class AssayTasks:
    """A task family over assays (one split of FS-Mol or of an assay table).

    ``sample_tasks(n, shots, queries, generator)`` -> Episode of ``n`` assays, each with
    ``shots`` inactives then ``shots`` actives as support (labels 0, 1) and ``queries``
    of each class as queries: x [n, 2*shots, D] and [n, 2*queries, D]. Assays with fewer
    than ``shots + queries`` molecules of either class are skipped (counted in ``skipped``).
    For graph features D = fingerprint dims + A * (F + A), A the largest molecule of the episode.
    """

    task = "classification"
    num_classes = 2

    def __init__(self, tasks: list[AssayTask], name: str = "assays", info: dict | None = None):
        if not tasks:
            raise ValueError(f"{name}: no assays to draw tasks from")
        self.tasks, self.name, self.info = list(tasks), name, dict(info or {})
        self.skipped: dict[tuple[int, int], int] = {}
        self.labels = torch.empty(0, dtype=torch.long)  # not a labelled dataset: samplers use sample_tasks

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def assay_names(self) -> list[str]:
        """The assays' names (``task_names``: each task is one assay)."""
        return self.task_names

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int) -> AssayTask:
        return self.tasks[i]

    def eligible(self, per_class: int) -> list[int]:
        """Indices of assays with at least ``per_class`` actives and inactives (the rest counted and logged)."""
        ok = [i for i, t in enumerate(self.tasks) if min(len(t.actives), len(t.inactives)) >= per_class]
        key = (per_class, len(self.tasks))
        if key not in self.skipped:
            self.skipped[key] = len(self.tasks) - len(ok)
            if self.skipped[key]:
                logger.warning(
                    "%s: skipped %d of %d assays with fewer than %d actives or inactives",
                    self.name,
                    self.skipped[key],
                    len(self.tasks),
                    per_class,
                )
        return ok

    def sample_tasks(self, n: int, shots: int, queries: int, generator: torch.Generator) -> Episode:
        """``n`` assays (distinct while there are enough) as a balanced episode (class docstring)."""
        if shots < 1 or queries < 0 or n < 1:
            raise ValueError(f"need n >= 1, shots >= 1 and queries >= 0, got {n}, {shots}, {queries}")
        ok = self.eligible(shots + queries)
        if not ok:
            raise ValueError(
                f"{self.name}: no assay has {shots + queries} actives and inactives "
                f"({shots} shots + {queries} queries per class)"
            )
        if n <= len(ok):
            picks = torch.randperm(len(ok), generator=generator)[:n]
        else:
            picks = torch.randint(len(ok), (n,), generator=generator)
        k = shots + queries
        chosen = []
        for p in picks.tolist():
            task = self.tasks[ok[p]]
            neg = task.inactives[torch.randperm(len(task.inactives), generator=generator)[:k]]  # [K+Q]
            pos = task.actives[torch.randperm(len(task.actives), generator=generator)[:k]]  # [K+Q]
            support = torch.cat([neg[:shots], pos[:shots]])  # [2K]
            query = torch.cat([neg[shots:], pos[shots:]])  # [2Q]
            chosen.append((task, support, query))
        labels = lambda m: torch.arange(2).repeat_interleave(m)  # noqa: E731
        return episode_of(chosen, labels(shots).expand(n, -1), labels(queries).expand(n, -1))

    def __repr__(self) -> str:
        return f"AssayTasks({self.name!r}, {self.num_tasks} assays)"


def check_support(support_y: Tensor) -> None:
    """One clear error for a support set a binary method cannot use: empty, or one class only."""
    if support_y.numel() == 0:
        raise ValueError("empty support set: at least one active and one inactive molecule are needed")
    classes = torch.unique(support_y).tolist()
    if classes != [0, 1]:
        raise ValueError(f"the support set needs both actives (1) and inactives (0), got classes {classes}")


def episode_of(chosen: list[tuple[AssayTask, Tensor, Tensor]], support_y: Tensor, query_y: Tensor) -> Episode:
    """Episode of (task, support index, query index) triples with equal sizes; one graph width for all."""
    atoms = max(max(t.features.max_atoms(s), t.features.max_atoms(q)) for t, s, q in chosen) or None
    support_x = torch.stack([t.gather(s, atoms) for t, s, _ in chosen])  # [B, S, D]
    query_x = torch.stack([t.gather(q, atoms) for t, _, q in chosen])  # [B, Q, D]
    return Episode(support_x, support_y.contiguous(), query_x, query_y.contiguous())
