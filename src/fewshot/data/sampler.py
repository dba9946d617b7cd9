"""N-way K-shot Q-query episode sampling as index arithmetic over a class table."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from fewshot.data.episode import Episode
from fewshot.data.tasks import is_task_family

IntOrRange = int | tuple[int, int]
SORT_LIMIT = 1 << 20  # random keys per draw below which sorting beats Floyd's algorithm


def sample_subsets(n: Tensor, m: int, generator: torch.Generator) -> Tensor:
    """For each row ``r``, ``m`` distinct integers from ``0..n[r]-1`` in random order.

    Small populations: one sort of random keys (invalid positions sort last). Large
    ones: Floyd's algorithm, vectorised over rows, O(rows * m^2) whatever ``n``.
    n: [R] with every n[r] >= m  ->  [R, m]
    """
    rows, width = n.shape[0], int(n.max())
    if rows * width <= SORT_LIMIT:
        keys = torch.rand(rows, width, generator=generator)  # [R, width]
        keys.masked_fill_(torch.arange(width) >= n[:, None], 2.0)
        return keys.argsort(dim=1)[:, :m]
    chosen = torch.empty(rows, m, dtype=torch.long)
    for j in range(m):
        high = n - m + j + 1  # [R]
        t = (torch.rand(rows, generator=generator, dtype=torch.float64) * high).long()
        duplicate = (chosen[:, :j] == t[:, None]).any(dim=1)
        chosen[:, j] = torch.where(duplicate, high - 1, t)
    order = torch.rand(rows, m, generator=generator).argsort(dim=1)
    return chosen.gather(1, order)


def _bounds(value: IntOrRange, name: str) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, int) else tuple(value)
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must be a positive integer or a (low, high) range, got {value!r}")
    return int(lo), int(hi)


class EpisodeSampler:
    """Draws N-way K-shot Q-query episodes from a labelled dataset.

    Classes are indexed once; an episode is then a gather of example indices, so
    sampling never scans the dataset. ``ways`` and ``shots`` may be ``(low, high)``
    ranges (evaluation with a variable number of ways or unequal shots per class);
    such tasks differ in size and come one per episode.

    The same ``seed`` gives the same episodes on any machine: randomness comes only
    from a CPU ``torch.Generator``. Classes with fewer than ``shots + queries``
    examples are an error unless ``drop_small_classes=True``.
    """

    def __init__(
        self,
        dataset,
        ways: IntOrRange,
        shots: IntOrRange,
        queries: int,
        seed: int = 0,
        *,
        batch_size: int = 1,
        drop_small_classes: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        self.dataset = dataset
        self.ways, self.shots = _bounds(ways, "ways"), _bounds(shots, "shots")
        if queries < 0:
            raise ValueError(f"queries must be >= 0, got {queries}")
        self.queries, self.seed, self.batch_size, self.device = queries, seed, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        if is_task_family(dataset):  # a task family (e.g. sinusoid) draws its own tasks
            return

        if self.ways[0] < 2:
            raise ValueError(f"ways must be at least 2 for classification episodes, got {self.ways[0]}")
        labels = torch.as_tensor(dataset.labels).long().cpu()
        counts = torch.bincount(labels, minlength=dataset.num_classes)
        need = self.shots[1] + queries
        small = (counts < need).nonzero().flatten().tolist()
        if small and not drop_small_classes:
            names = getattr(dataset, "classes", None) or range(dataset.num_classes)
            listed = ", ".join(f"{names[c]!r} ({int(counts[c])})" for c in small[:5])
            more = f" and {len(small) - 5} more" if len(small) > 5 else ""
            raise ValueError(
                f"{len(small)} class(es) have fewer than {need} examples "
                f"({self.shots[1]} shots + {queries} queries): {listed}{more}; "
                "lower shots/queries or pass drop_small_classes=True to skip them"
            )
        self.class_ids = (counts >= need).nonzero().flatten()  # [C'] eligible classes
        if len(self.class_ids) < self.ways[1]:
            raise ValueError(
                f"{self.ways[1]}-way episodes need {self.ways[1]} classes with at least {need} "
                f"examples, but the dataset has {len(self.class_ids)}"
            )
        # Class table: row c lists the example indices of eligible class c, padded with -1.
        order = torch.argsort(labels, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        self.counts = counts[self.class_ids]  # [C']
        width = int(self.counts.max())
        pos = torch.arange(width)
        inside = pos[None, :] < self.counts[:, None]  # [C', width]
        flat = (starts[self.class_ids][:, None] + pos[None, :]).clamp(max=len(order) - 1)
        self.table = torch.where(inside, order[flat], -1)  # [C', width]

    @property
    def fixed_size(self) -> bool:
        return self.ways[0] == self.ways[1] and self.shots[0] == self.shots[1]

    def sample(self, batch_size: int | None = None) -> Episode:
        """One episode of ``batch_size`` tasks, drawn from this sampler's stream."""
        return self._draw(batch_size or self.batch_size, self.generator)

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def episodes(self, tasks: int, batch_size: int = 1) -> Iterator[Episode]:
        """A fixed, reproducible set of ``tasks`` tasks (for evaluation), in episodes of
        ``batch_size`` tasks. The same tasks whatever the batch size, and however much
        of the training stream was used before."""
        generator = torch.Generator().manual_seed(self.seed)
        for start in range(0, tasks, batch_size):
            # one task at a time, so the set does not depend on batch_size
            drawn = [self._draw(1, generator) for _ in range(min(batch_size, tasks - start))]
            yield Episode.cat(drawn)

    def _draw(self, batch_size: int, generator: torch.Generator) -> Episode:
        if is_task_family(self.dataset):
            episode = self.dataset.sample_tasks(batch_size, self.shots[0], self.queries, generator)
            return episode if self.device is None else episode.to(self.device)
        if self.fixed_size:
            return self._draw_fixed(batch_size, self.ways[0], self.shots[0], generator)
        if batch_size != 1:
            raise ValueError("episodes with a variable number of ways or shots come one task at a time")
        return self._draw_variable(generator)

    def _draw_fixed(self, b: int, n: int, k: int, generator: torch.Generator) -> Episode:
        q = self.queries
        classes = sample_subsets(torch.full((b,), len(self.class_ids)), n, generator)  # [B, N]
        picks = sample_subsets(self.counts[classes].flatten(), k + q, generator)  # [B*N, K+Q]
        index = self.table[classes.flatten()[:, None], picks].view(b, n, k + q)
        ways = torch.arange(n, device=self._label_device)
        return Episode(  # class-major order: K examples of class 0, then of class 1, ...
            support_x=self._gather(index[:, :, :k].reshape(b, n * k)),
            support_y=ways.repeat_interleave(k).repeat(b, 1),
            query_x=self._gather(index[:, :, k:].reshape(b, n * q)),
            query_y=ways.repeat_interleave(q).repeat(b, 1),
        )

    def _draw_variable(self, generator: torch.Generator) -> Episode:
        n = _randint(*self.ways, generator)
        classes = sample_subsets(torch.tensor([len(self.class_ids)]), n, generator)[0]  # [N]
        support, query, support_y, query_y = [], [], [], []
        for label, c in enumerate(classes.tolist()):
            k = _randint(*self.shots, generator)
            pick = sample_subsets(self.counts[c : c + 1], k + self.queries, generator)[0]
            index = self.table[c, pick]
            support.append(index[:k])
            query.append(index[k:])
            support_y += [label] * k
            query_y += [label] * self.queries
        as_row = lambda values: torch.tensor(values, device=self._label_device)[None]  # noqa: E731
        return Episode(
            support_x=self._gather(torch.cat(support)[None]),
            support_y=as_row(support_y),
            query_x=self._gather(torch.cat(query)[None]),
            query_y=as_row(query_y),
        )

    @property
    def _label_device(self):
        return self.device if self.device is not None else getattr(self.dataset, "data", torch.empty(0)).device

    def _gather(self, index: Tensor) -> Tensor:
        """Examples for an index tensor [B, M] -> [B, M, ...]."""
        if hasattr(self.dataset, "gather"):
            x = self.dataset.gather(index)
        else:  # datasets that read their examples one at a time (files)
            x = torch.stack([self.dataset[i][0] for i in index.flatten().tolist()])
            x = x.view(*index.shape, *x.shape[1:])
        return x if self.device is None else x.to(self.device)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator))
