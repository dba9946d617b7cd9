"""The Omniglot one-shot "runs": 20-way within-alphabet one-shot tasks of the release.

Layout under ``root`` (the official ``all_runs`` folder)::

    runNN/training/classMM.png     one drawing per class (the support set)
    runNN/test/itemMM.png          one drawing per query
    runNN/class_labels.txt         lines "runNN/test/item01.png runNN/training/class17.png"

Paths in ``class_labels.txt`` are relative to ``root``. Each run becomes one task
(B = 1): support = the training images in file-name order, labelled 0..N-1; query =
the test images in ``class_labels.txt`` order, labelled by their matching training
image. Images get the same preprocessing as ``omniglot`` (resize, invert).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fewshot.data.dataset import as_float
from fewshot.data.episode import Episode
from fewshot.data.images import check_options, is_hidden, is_image_name, preprocessing, read_image

_RUN = re.compile(r"run\d+")


@dataclass
class OmniglotRun:
    """One run: N training images [N, 1, S, S], Q test images [Q, 1, S, S], query labels [Q]."""

    name: str
    support: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray

    def episode(self) -> Episode:
        """The run as a one-task episode (B = 1), images as floats in [0, 1]."""
        n = len(self.support)
        return Episode(
            support_x=as_float(torch.from_numpy(self.support))[None],  # [1, N, 1, S, S]
            support_y=torch.arange(n)[None],  # [1, N]
            query_x=as_float(torch.from_numpy(self.query))[None],  # [1, Q, 1, S, S]
            query_y=torch.from_numpy(self.query_labels).long()[None],  # [1, Q]
        )


class OmniglotRuns:
    """The runs found under a folder: ``len(runs)`` tasks, ``runs.episodes()`` to evaluate."""

    def __init__(self, runs: list[OmniglotRun], preprocessing: dict, name: str = "omniglot-runs") -> None:
        self.runs = runs
        self.preprocessing = preprocessing
        self.name = name

    def __len__(self) -> int:
        return len(self.runs)

    def episodes(self) -> list[Episode]:
        """One episode (B = 1) per run, in run order."""
        return [run.episode() for run in self.runs]

    def __repr__(self) -> str:
        ways = sorted({len(r.support) for r in self.runs})
        return f"OmniglotRuns({self.name!r}, {len(self)} runs, {'/'.join(map(str, ways))}-way one-shot)"


def load_omniglot_runs(
    root: str | os.PathLike | None = None, split: str = "test", *, image_size: int = 28
) -> OmniglotRuns:
    """Every ``runNN`` folder under ``root`` as a one-shot task (the runs form a test split only)."""
    if split != "test":
        raise ValueError(f"omniglot-runs is an evaluation benchmark with only a 'test' split, got {split!r}")
    check_options(image_size, channels=1)
    if root is None:
        raise ValueError("omniglot-runs needs root=<folder holding run01/, run02/, ...>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Omniglot runs folder not found")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and _RUN.fullmatch(p.name))
    if not names:
        raise ValueError(f"{root}: no runNN/ folders (expected runNN/training, runNN/test, runNN/class_labels.txt)")
    runs = [_load_run(root, name, image_size) for name in names]
    return OmniglotRuns(runs, preprocessing(image_size, channels=1, inverted=True), name=f"omniglot-runs:{root.name}")


def _load_run(root: Path, name: str, image_size: int) -> OmniglotRun:
    folder = root / name
    labels_file = folder / "class_labels.txt"
    if not labels_file.is_file():
        raise FileNotFoundError(f"{labels_file}: missing (each run needs training/, test/ and class_labels.txt)")
    training_dir = folder / "training"
    if not training_dir.is_dir():
        raise FileNotFoundError(f"{training_dir}: missing training folder of run {name}")
    training = sorted(p for p in training_dir.iterdir() if not is_hidden(p.name))
    for p in training:
        if not p.is_file() or not is_image_name(p.name):
            raise ValueError(f"{p}: not an image file (a run's training/ folder holds one image per class)")
    if not training:
        raise ValueError(f"{training_dir}: no training images")
    position = {p.resolve(): i for i, p in enumerate(training)}

    queries: list[Path] = []
    labels: list[int] = []
    for lineno, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{labels_file}:{lineno}"
        if len(parts) != 2:
            raise ValueError(f"{where}: expected '<test image> <training image>', got {line!r}")
        test, train = root / parts[0], root / parts[1]
        for p in (test, train):
            if not p.is_file():
                raise FileNotFoundError(f"{where}: referenced file {p} does not exist")
        if train.resolve() not in position:
            raise ValueError(f"{where}: {parts[1]} is not an image of {training_dir}")
        queries.append(test)
        labels.append(position[train.resolve()])
    if not queries:
        raise ValueError(f"{labels_file}: no test images listed")

    options = {"channels": 1, "size": image_size, "invert": True}
    support = np.stack([read_image(p, **options) for p in training])  # [N, 1, S, S]
    query = np.stack([read_image(p, **options) for p in queries])  # [Q, 1, S, S]
    return OmniglotRun(name, support, query, np.asarray(labels, dtype=np.int64))
