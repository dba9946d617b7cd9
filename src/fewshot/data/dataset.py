"""Labelled examples held as one tensor: the in-memory dataset every sampler gathers from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def as_float(x: Tensor) -> Tensor:
    """Images are stored as uint8 (a quarter of the memory) and served as floats in [0, 1]."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


class FewShotDataset:
    """Examples ``data [n, ...]`` with integer ``labels [n]`` in ``0..num_classes-1``.

    Image datasets store ``data`` as uint8 [n, C, H, W] and serve floats in [0, 1].
    ``classes[c]`` is the human-readable name of class ``c``. Labels given as any
    other values (strings, sparse ids) are mapped to ``0..C-1`` in sorted order.
    """

    def __init__(self, data, labels, classes: Sequence[str] | None = None, name: str = "arrays"):
        data = torch.as_tensor(np.asarray(data) if not isinstance(data, Tensor) else data)
        raw = labels if isinstance(labels, Tensor) else np.asarray(labels)
        if len(raw) != len(data):
            raise ValueError(f"{name}: {len(data)} examples but {len(raw)} labels")
        if isinstance(raw, Tensor) and not raw.is_floating_point() and classes is not None:
            labels = raw.long()
        else:
            values, inverse = np.unique(np.asarray(raw.cpu() if isinstance(raw, Tensor) else raw), return_inverse=True)
            labels = torch.as_tensor(inverse.reshape(-1), dtype=torch.long)
            classes = [str(v) for v in values] if classes is None else classes
        if labels.dim() != 1:
            raise ValueError(f"{name}: labels must be one-dimensional, got shape {tuple(labels.shape)}")
        self.data = data
        self.labels = labels
        self.classes = list(classes)
        self.name = name
        self.preprocessing: dict | None = None  # images: how the files became tensors (size, channels, ...)
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(self.classes)):
            raise ValueError(f"{name}: labels must lie in 0..{len(self.classes) - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return as_float(self.data[i]), int(self.labels[i])

    def gather(self, index: Tensor) -> Tensor:
        """Examples for an index tensor of any shape: [*index.shape, ...], as floats."""
        return as_float(self.data[index.to(self.data.device)])

    def to(self, device: torch.device | str) -> FewShotDataset:
        """The same dataset with its example tensor on ``device`` (labels stay on the CPU)."""
        moved = object.__new__(type(self))
        moved.__dict__.update(self.__dict__, data=self.data.to(device))
        return moved

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.data.shape[1:]))
        return f"{type(self).__name__}({self.name!r}, {len(self)} examples of {shape}, {self.num_classes} classes)"
