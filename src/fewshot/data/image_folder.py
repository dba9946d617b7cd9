"""Any folder of class-labelled images, and miniImageNet-style CSV splits.

Where the images of ``split`` are found, first match wins:

1. ``csv=<path>``: a CSV file given explicitly;
2. ``root/<split>.csv``: rows ``filename,label`` after a header line, images looked up
   in ``root/images/`` and then in ``root`` (the miniImageNet layout);
3. ``root/<split>/<class>/<image>``: one folder per split;
4. ``root/<class>/<image>``: the whole tree is the split (whatever ``split`` says).

Images are converted to ``channels`` (1 grayscale, 3 RGB) and resized to
``image_size`` squared; no normalisation (floats in [0, 1]). By default they are
decoded once and cached; ``lazy=True`` reads the file on every access instead.
"""

from __future__ import annotations

import csv as csv_module
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fewshot.data.cache import cache_key, cached
from fewshot.data.dataset import FewShotDataset, as_float
from fewshot.data.images import (
    IMAGE_EXTENSIONS,
    check_options,
    files_fingerprint,
    is_hidden,
    is_image_name,
    preprocessing,
    read_image,
)

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the decoded cache contents change


class LazyImageFolder:
    """Labelled image files decoded on every ``__getitem__`` (no ``data`` tensor held).

    Has the attributes samplers use: ``labels [n]``, ``classes``, ``num_classes``.
    """

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        classes: list[str],
        *,
        image_size: int,
        channels: int,
        name: str = "image-folder",
    ) -> None:
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.long)  # [n]
        self.classes = list(classes)
        self.name = name
        self.image_size, self.channels = image_size, channels
        self.preprocessing = preprocessing(image_size, channels, inverted=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image = read_image(self.files[i], channels=self.channels, size=self.image_size)  # [C, S, S]
        return as_float(torch.from_numpy(image)), int(self.labels[i])

    def __repr__(self) -> str:
        shape = f"{self.channels}x{self.image_size}x{self.image_size}"
        return f"LazyImageFolder({self.name!r}, {len(self)} files read as {shape}, {self.num_classes} classes)"


def load_image_folder(
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    image_size: int = 84,
    channels: int = 3,
    csv: str | os.PathLike | None = None,
    lazy: bool = False,
) -> FewShotDataset | LazyImageFolder:
    """Images of ``split`` under ``root`` (see module doc) as uint8 [n, C, S, S] with labels."""
    check_options(image_size, channels)
    if root is None:
        raise ValueError("image-folder needs root=<folder of <class>/<image> folders or split CSV files>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found")
    files, names = _index(root, split, csv)
    classes = sorted(set(names))
    position = {c: i for i, c in enumerate(classes)}
    labels = [position[n] for n in names]
    name = f"image-folder:{root.name}/{split}"
    if lazy:
        return LazyImageFolder(files, labels, classes, image_size=image_size, channels=channels, name=name)

    rel = [os.path.relpath(f, root) for f in files]
    fingerprint = files_fingerprint(root, rel, names)
    key = cache_key("image-folder", format=FORMAT, files=fingerprint, image_size=image_size, channels=channels)

    def build() -> tuple[dict[str, Tensor], dict]:
        logger.info("decoding %d images from %s (once; later loads use the cache)", len(files), root)
        images = np.empty((len(files), channels, image_size, image_size), dtype=np.uint8)  # [n, C, S, S]
        for i, f in enumerate(files):
            images[i] = read_image(f, channels=channels, size=image_size)
        return {"images": torch.from_numpy(images)}, {"classes": classes}

    tensors, _ = cached(key, build)
    dataset = FewShotDataset(tensors["images"], torch.tensor(labels, dtype=torch.long), classes, name=name)
    dataset.preprocessing = preprocessing(image_size, channels, inverted=False)
    return dataset


def _index(root: Path, split: str, csv: str | os.PathLike | None) -> tuple[list[Path], list[str]]:
    """Image files of ``split`` and their class names."""
    if csv is not None:
        path = Path(csv).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split CSV file not found")
        return _index_csv(root, path)
    if (root / f"{split}.csv").is_file():
        return _index_csv(root, root / f"{split}.csv")
    return _index_tree(root / split if (root / split).is_dir() else root)


def _index_tree(tree: Path) -> tuple[list[Path], list[str]]:
    """``tree/<class>/<image>``: every visible file of a class folder must be an image."""
    class_dirs = sorted(p for p in tree.iterdir() if p.is_dir() and not is_hidden(p.name))
    if not class_dirs:
        raise ValueError(f"{tree}: no class folders (expected {tree}/<class>/<image>)")
    files: list[Path] = []
    names: list[str] = []
    for folder in class_dirs:
        entries = sorted(p for p in folder.iterdir() if not is_hidden(p.name))
        for p in entries:
            if p.is_dir():
                raise ValueError(f"{p}: unexpected folder inside class folder {folder.name!r} (expected images only)")
            if not is_image_name(p.name):
                raise ValueError(f"{p}: not an image file (expected one of {', '.join(sorted(IMAGE_EXTENSIONS))})")
        if not entries:
            raise ValueError(f"{folder}: empty class folder (no images)")
        files += entries
        names += [folder.name] * len(entries)
    return files, names


def _index_csv(root: Path, path: Path) -> tuple[list[Path], list[str]]:
    """Rows ``filename,label`` after a header; images in ``root/images`` or ``root``."""
    with open(path, newline="") as f:
        rows = list(csv_module.reader(f))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header != ["filename", "label"]:
        raise ValueError(f"{path}: expected a header line 'filename,label', got {rows[0] if rows else 'an empty file'}")
    folders = [d for d in (root / "images", root) if d.is_dir()]
    files: list[Path] = []
    names: list[str] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"{path}:{lineno}: expected 'filename,label', got {','.join(row)!r}")
        filename, label = row[0].strip(), row[1].strip()
        found = next((d / filename for d in folders if (d / filename).is_file()), None)
        if found is None:
            where = " or ".join(str(d) for d in folders)
            raise FileNotFoundError(f"{path}:{lineno}: image {filename!r} not found in {where}")
        if not is_image_name(found.name):
            raise ValueError(f"{found}: not an image file (listed at {path}:{lineno})")
        files.append(found)
        names.append(label)
    if not files:
        raise ValueError(f"{path}: lists no images")
    return files, names
