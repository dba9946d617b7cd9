"""The evaluation protocols of the field: FS-Mol's stratified supports and MoleculeNet's K + K supports.

Each yields ``EvalEpisode``s of one task (B = 1) whose queries are the rest of the task.
Draw ``d`` of every task uses ``torch.Generator().manual_seed(seed + d)``, so a draw does
not depend on which other tasks or sizes are evaluated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from fewshot.data.episode import Episode
from fewshot.molecules.tasks import AssayTask, episode_of

logger = logging.getLogger(__name__)
FSMOL_SIZES = (16, 32, 64, 128)
MOLECULENET_SHOTS = (1, 10)


@dataclass
class EvalEpisode:
    task: str
    support_size: int
    draw: int
    episode: Episode  # B = 1; support and query sorted inactives first


def stratified_support(labels: Tensor, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A support of ``size`` molecules keeping the task's fraction of actives; the rest are queries.

    labels: [m] 0/1 -> (support index [size], query index [m - size]). At least one active and
    one inactive stay on each side; a task that cannot give that raises ``ValueError``.
    """
    labels = torch.as_tensor(labels)
    pos, neg = (labels == 1).nonzero().flatten(), (labels == 0).nonzero().flatten()
    m = len(labels)
    if size < 2:
        raise ValueError(f"a stratified support needs at least 2 molecules, got size {size}")
    if len(pos) < 2 or len(neg) < 2 or m - size < 2:
        raise ValueError(
            f"task with {len(pos)} actives and {len(neg)} inactives is too small for a support of {size} "
            "with both classes on each side"
        )
    actives = int(size * len(pos) / m + 0.5)
    actives = max(1, min(actives, size - 1, len(pos) - 1))
    inactives = size - actives
    if inactives > len(neg) - 1:
        inactives = len(neg) - 1
        actives = size - inactives
        if actives > len(pos) - 1:
            raise ValueError(f"task of {m} molecules is too small for a support of {size}")
    pos = pos[torch.randperm(len(pos), generator=generator)]
    neg = neg[torch.randperm(len(neg), generator=generator)]
    support = torch.cat([neg[:inactives], pos[:actives]])
    query = torch.cat([neg[inactives:], pos[actives:]])
    return support, query


def balanced_support(labels: Tensor, shots: int, generator: torch.Generator, queries: int | None = None):
    """``shots`` inactives + ``shots`` actives as support; queries the rest (or ``queries`` per class)."""
    labels = torch.as_tensor(labels)
    pos, neg = (labels == 1).nonzero().flatten(), (labels == 0).nonzero().flatten()
    need = shots + (queries if queries is not None else 1)
    if shots < 1 or len(pos) < need or len(neg) < need:
        raise ValueError(f"task with {len(pos)} actives and {len(neg)} inactives cannot give {shots} + {shots} shots")
    pos = pos[torch.randperm(len(pos), generator=generator)]
    neg = neg[torch.randperm(len(neg), generator=generator)]
    end = None if queries is None else shots + queries
    support = torch.cat([neg[:shots], pos[:shots]])
    query = torch.cat([neg[shots:end], pos[shots:end]])
    return support, query


def _episodes(
    tasks: Sequence[AssayTask], sizes, draws: int, seed: int, draw_fn, what: str, max_queries: int | None = None
) -> Iterator[EvalEpisode]:
    skipped: dict[int, int] = {}
    for size in sizes:
        for task in tasks:
            for d in range(draws):
                generator = torch.Generator().manual_seed(seed + d)
                try:
                    support, query = draw_fn(task.labels, size, generator)
                except ValueError:
                    skipped[size] = skipped.get(size, 0) + 1
                    break
                labels = task.labels
                if max_queries is not None and len(query) >= max_queries + 2:
                    query = _subset(labels, query, max_queries, generator)
                chosen = [(task, support, query)]
                yield EvalEpisode(task.name, size, d, episode_of(chosen, labels[support][None], labels[query][None]))
    for size, count in skipped.items():
        logger.warning("skipped %d of %d tasks too small for %s %d", count, len(tasks), what, size)


def _subset(labels: Tensor, query: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A stratified subset of ``size`` of the query indices (all of them when the task is too lopsided)."""
    try:
        return query[stratified_support(labels[query], size, generator)[0]]
    except ValueError:
        return query


def fsmol_episodes(
    family, sizes: Sequence[int] = FSMOL_SIZES, draws: int = 10, seed: int = 0, max_queries: int | None = None
) -> Iterator[EvalEpisode]:
    """FS-Mol's protocol: per task and support size, ``draws`` stratified supports, the rest as
    queries (``max_queries``: a stratified subset of the rest, for quick validation only)."""
    return _episodes(list(family.tasks), sizes, draws, seed, stratified_support, "support size", max_queries)


def moleculenet_episodes(
    family, shots: Sequence[int] = MOLECULENET_SHOTS, draws: int = 10, seed: int = 0, queries: int | None = None
) -> Iterator[EvalEpisode]:
    """The MoleculeNet few-shot protocol: K actives + K inactives as support, the rest (or
    ``queries`` per class) as queries; ``support_size`` of the yielded episodes is K."""

    def draw(labels, k, generator):
        return balanced_support(labels, k, generator, queries)

    return _episodes(list(family.tasks), shots, draws, seed, draw, "shots")
