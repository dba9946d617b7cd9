"""Dataset names -> loaders. ``get_dataset`` is the one entry point the CLI uses."""

from __future__ import annotations

import importlib

from fewshot.registry import check_options

# name -> (module, function); modules are imported on first use.
DATASETS: dict[str, tuple[str, str]] = {
    "glyphs": ("fewshot.data.glyphs", "load_glyphs"),
    "omniglot": ("fewshot.data.omniglot", "load_omniglot"),
    "omniglot-runs": ("fewshot.data.omniglot_runs", "load_omniglot_runs"),
    "image-folder": ("fewshot.data.image_folder", "load_image_folder"),
    "sinusoid": ("fewshot.data.registry", "load_sinusoid"),
}

SPLITS = ("train", "val", "test", "trainval")


def get_dataset(name: str, root=None, split: str = "train", **options):
    """Load dataset ``name`` (see ``DATASETS``) for ``split``: train, val, test or trainval."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    module, function = DATASETS[name]
    loader = getattr(importlib.import_module(module), function)
    check_options(loader, options, f"dataset {name!r}", ("root", "split"))
    return loader(root=root, split=split, **options)


def load_sinusoid(root=None, split: str = "train", **options):
    from fewshot.data.sinusoid import Sinusoid

    return Sinusoid(**options)  # every split draws from the same family; seeds tell them apart
