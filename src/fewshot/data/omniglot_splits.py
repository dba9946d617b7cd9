"""Omniglot's split schemes: the classes, as ``(Alphabet/characterNN, degrees)``, of each split.

``vinyals`` reads its split files; ``alphabet``, ``small1`` and ``small2`` take whole image sets
(``alphabet`` holds ``VAL_ALPHABETS`` out for val); ``characters`` cuts a fixed shuffle of all
1,623 characters by ``CHARACTER_SPLIT``. See :mod:`fewshot.data.omniglot` for each scheme.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import torch

from fewshot.data.omniglot_release import Source

SCHEMES = ("vinyals", "alphabet", "small1", "small2", "characters")
SPLITS = ("train", "val", "trainval", "test")
CHARACTER_SPLIT = {"train": (0, 1100), "val": (1100, 1200), "trainval": (0, 1200), "test": (1200, 1623)}
CHARACTER_SEED = 1
ROTATIONS = (0, 90, 180, 270)
VAL_ALPHABETS = ("Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)")
_ROT = re.compile(r"rot(\d{3})")


def split_file(root: Path, split: str):
    """``root/splits/vinyals/<split>.txt`` when present, else the packaged copy."""
    local = root / "splits" / "vinyals" / f"{split}.txt"
    if local.is_file():
        return local
    return resources.files("fewshot.data").joinpath("splits").joinpath("vinyals").joinpath(f"{split}.txt")


def vinyals_classes(
    root: Path, split: str, rotations: bool, available: set[str], sources: dict[str, Source]
) -> list[tuple[str, int]]:
    """Classes of the ``vinyals`` scheme, in the order of its split file."""
    path = split_file(root, split)
    classes: list[tuple[str, int]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("/")
        match = _ROT.fullmatch(parts[-1]) if len(parts) == 3 else None
        if match is None or int(match.group(1)) not in ROTATIONS:
            raise ValueError(
                f"{path}:{lineno}: expected 'Alphabet/characterNN/rotDDD' (DDD in 000, 090, 180, 270), got {line!r}"
            )
        char, rot = f"{parts[0]}/{parts[1]}", int(match.group(1))
        if rotations:
            classes.append((char, rot))
        elif char not in seen:
            classes.append((char, 0))
        seen.add(char)
    missing = sorted(seen - available)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} characters of the vinyals {split} split ({path}) are not in {root}, "
            f"e.g. {', '.join(missing[:3])}; it needs images_background and images_evaluation "
            f"(found: {', '.join(sorted(sources)) or 'none'})"
        )
    if not classes:
        raise ValueError(f"{path}: the split file lists no classes")
    return classes


def character_classes(
    root: Path, split: str, rotations: bool, characters: list[str], sets: dict[str, list[int]]
) -> list[tuple[str, int]]:
    """Classes of the ``characters`` scheme: a fixed shuffle of all 1,623 characters, cut by ``CHARACTER_SPLIT``."""
    missing = [name for name in ("images_background", "images_evaluation") if name not in sets]
    if missing:
        raise FileNotFoundError(
            f"{root}: the 'characters' split shuffles all characters; it needs {', '.join(missing)}"
        )
    names = sorted({characters[i] for name in ("images_background", "images_evaluation") for i in sets[name]})
    end = CHARACTER_SPLIT["test"][1]
    if len(names) != end:
        raise ValueError(f"{root}: the 'characters' split expects {end} characters, found {len(names)}")
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(CHARACTER_SEED)).tolist()
    start, stop = CHARACTER_SPLIT[split]
    return [(names[i], r) for i in order[start:stop] for r in (ROTATIONS if rotations else (0,))]


def scheme_classes(
    root: Path, scheme: str, split: str, rotations: bool, characters: list[str], sets: dict[str, list[int]]
) -> list[tuple[str, int]]:
    """Classes of the ``alphabet``, ``small1`` and ``small2`` schemes."""
    if split == "test":
        needed = "images_evaluation"
    elif scheme == "alphabet":
        needed = "images_background"
    elif split == "val":
        raise ValueError(f"the {scheme!r} Omniglot scheme has no val split (train, trainval, test)")
    else:
        needed = f"images_background_{scheme}"
    if needed not in sets:
        raise FileNotFoundError(
            f"{root}: the {scheme!r} {split} split needs {needed}.zip (or an unpacked {needed}/ folder)"
        )
    chars = [characters[i] for i in sets[needed]]
    if scheme == "alphabet" and split in ("train", "val"):
        held_out = split == "val"
        chars = [c for c in chars if (c.split("/")[0] in VAL_ALPHABETS) == held_out]
    if not chars:
        raise ValueError(f"{root}: the {scheme!r} {split} split has no characters in {needed}")
    return [(c, r) for c in chars for r in (ROTATIONS if rotations else (0,))]
