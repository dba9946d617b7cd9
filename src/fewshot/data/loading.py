"""``get_dataset``: a labelled dataset or a task family by name (see ``fewshot.registry.DATASETS``)."""

from __future__ import annotations

from fewshot.registry import DATASETS


def get_dataset(name: str, root=None, split: str = "train", **options):
    """Dataset ``name`` for ``split`` (each loader names its splits, e.g. train, val, test, trainval)."""
    return DATASETS.build(name, root=root, split=split, reserved=("root", "split"), **options)
