"""Omniglot (Lake et al.) from the official release zips or their unpacked folders.

Layout under ``root`` (zips, unpacked folders, or a mix)::

    images_background[.zip]/<Alphabet>/characterNN/<ID>_<drawer>.png
    images_evaluation[.zip]/...            images_background_small{1,2}[.zip]/...
    splits/vinyals/{train,val,trainval,test}.txt     (optional; packaged copies otherwise)

Every set found is decoded once (resized, inverted so strokes are 255 on 0) and
cached as unrotated characters keyed by ``Alphabet/characterNN``: a character in
several sets (the small sets are subsets of background) is stored once. Splits and
rotations are then built in memory from that one cache entry.

Split schemes (``splits=``):

- ``"vinyals"`` (default): the Matching/Prototypical Networks split, classes
  ``Alphabet/characterNN/rotDDD`` (train 4,112, val 688, trainval 4,800, test 1,692
  with rotations). Read from ``root/splits/vinyals/<split>.txt`` when present.
- ``"alphabet"``: background alphabets for train, except ``VAL_ALPHABETS`` held out
  for val (the 5 background alphabets of the Vinyals val split); trainval = all of
  background; test = the evaluation alphabets.
- ``"small1"`` / ``"small2"``: a reduced background set alone as train (= trainval);
  test = the evaluation alphabets; there is no val split.
- ``"characters"``: the split of MAML's, Reptile's and Relation Networks' code: all
  1,623 characters shuffled (a fixed seed, so every run gets the same split) and cut
  into train 1,100, val 100 (trainval = those 1,200) and test 423, so test characters
  come from alphabets seen in training, unlike the Vinyals split's mostly unseen ones.
  The papers' own shuffles depend on their file listing order; this one is fixed.

Rotations (``rotations=``, default on for ``vinyals`` and ``characters``) add each character
turned by 90, 180 and 270 degrees counter-clockwise as a class of its own.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fewshot.data.cache import cache_key, cached, source_fingerprint
from fewshot.data.dataset import FewShotDataset
from fewshot.data.images import (
    check_options,
    files_fingerprint,
    is_hidden,
    open_zip,
    preprocessing,
    read_image,
    read_zip_image,
)

logger = logging.getLogger(__name__)

SETS = ("images_background", "images_evaluation", "images_background_small1", "images_background_small2")
SCHEMES = ("vinyals", "alphabet", "small1", "small2", "characters")
CHARACTER_SPLIT = {"train": (0, 1100), "val": (1100, 1200), "trainval": (0, 1200), "test": (1200, 1623)}
CHARACTER_SEED = 1
SPLITS = ("train", "val", "trainval", "test")
ROTATIONS = (0, 90, 180, 270)
VAL_ALPHABETS = ("Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)")
FORMAT = 1  # bump when the decoded cache contents change
_ROT = re.compile(r"rot(\d{3})")


@dataclass(frozen=True)
class Source:
    """One image set: a zip archive, or its unpacked folder."""

    set_name: str
    path: Path

    @property
    def is_zip(self) -> bool:
        return self.path.suffix == ".zip"


def load_omniglot(
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    splits: str = "vinyals",
    image_size: int = 28,
    rotations: bool | None = None,
) -> FewShotDataset:
    """Omniglot ``split`` of the ``splits`` scheme as uint8 [n, 1, S, S] images (see module doc).

    ``rotations=None`` means on for ``vinyals`` and ``characters``, off for the other schemes.
    The dataset carries a ``preprocessing`` dict (image_size, channels, inverted, ...).
    """
    if splits not in SCHEMES:
        raise ValueError(f"unknown Omniglot split scheme {splits!r}; valid: {', '.join(SCHEMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    check_options(image_size, channels=1)
    rotations = (splits in ("vinyals", "characters")) if rotations is None else bool(rotations)
    root = _check_root(root)
    sources = find_sources(root)
    images, character, characters, sets = decode_sources(sources, image_size)

    if splits == "vinyals":
        classes = _vinyals_classes(root, split, rotations, set(characters), sources)
    elif splits == "characters":
        classes = _character_classes(root, split, rotations, characters, sets)
    else:
        classes = _scheme_classes(root, splits, split, rotations, characters, sets)
    position = {c: i for i, c in enumerate(characters)}
    data, labels = build_split(images, character, [position[c] for c, _ in classes], [r for _, r in classes])
    names = [f"{c}/rot{r:03d}" if rotations else c for c, r in classes]
    dataset = FewShotDataset(data, labels, names, name=f"omniglot-{splits}-{split}")
    dataset.preprocessing = preprocessing(image_size, channels=1, inverted=True)
    return dataset


def find_sources(root: Path) -> dict[str, Source]:
    """The image sets present under ``root``; an unpacked folder wins over its zip."""
    found = {}
    for name in SETS:
        folder, archive = root / name, root / f"{name}.zip"
        if folder.is_dir():
            found[name] = Source(name, folder)
        elif archive.is_file():
            found[name] = Source(name, archive)
    if not found:
        raise FileNotFoundError(
            f"{root}: no Omniglot image sets found; expected some of "
            f"{', '.join(n + '.zip' for n in SETS)} or their unpacked folders "
            "(fewshot.data.download.download_omniglot fetches them)"
        )
    return found


def decode_sources(
    sources: dict[str, Source], image_size: int
) -> tuple[Tensor, Tensor, list[str], dict[str, list[int]]]:
    """Decoded unrotated characters of every set, from the cache when it is there.

    Returns images uint8 [n, 1, S, S], ``character`` [n] (index into ``characters``),
    the character names ``Alphabet/characterNN`` and, per set, its character indices.
    """
    listings: dict[str, dict[str, list[str]]] = {}
    fingerprints = {}
    for name, source in sources.items():
        if source.is_zip:
            fingerprints[name] = source_fingerprint([source.path])
        else:  # an unpacked folder: its listing is both the fingerprint and the plan
            listings[name] = _list_folder(source)
            rel = [m for members in listings[name].values() for m in members]
            fingerprints[name] = files_fingerprint(source.path, rel)
    key = cache_key("omniglot", format=FORMAT, image_size=image_size, sources=fingerprints)

    def build() -> tuple[dict[str, Tensor], dict]:
        for name, source in sources.items():
            if name not in listings:
                listings[name] = _list_zip(source)
        return _decode(sources, listings, image_size)

    tensors, meta = cached(key, build)
    return tensors["images"], tensors["character"], meta["characters"], meta["sets"]


def build_split(images: Tensor, character: Tensor, char_ids: list[int], rotations: list[int]) -> tuple[Tensor, Tensor]:
    """Class ``i`` = every image of character ``char_ids[i]`` turned ``rotations[i]`` degrees.

    images: [n, 1, S, S], character: [n]  ->  data [m, 1, S, S], labels [m]
    """
    order = torch.argsort(character, stable=True)
    counts = torch.bincount(character, minlength=int(character.max()) + 1 if len(character) else 0)
    by_char = torch.split(order, counts.tolist())  # image indices of each character
    picked = [by_char[c] for c in char_ids]
    sizes = torch.tensor([len(p) for p in picked], dtype=torch.long)  # [C]
    index = torch.cat(picked) if picked else torch.empty(0, dtype=torch.long)  # [m]
    labels = torch.repeat_interleave(torch.arange(len(char_ids)), sizes)  # [m]
    turns = torch.repeat_interleave(torch.tensor(rotations, dtype=torch.long) // 90, sizes)  # [m]
    data = images[index]  # [m, 1, S, S]
    for k in (1, 2, 3):
        sel = (turns == k).nonzero().flatten()
        if len(sel):
            data[sel] = torch.rot90(data[sel], k, dims=(-2, -1))  # counter-clockwise
    return data, labels


def _check_root(root) -> Path:
    if root is None:
        raise ValueError(
            "omniglot needs root=<folder with images_background.zip, images_evaluation.zip> "
            "(fewshot.data.download.download_omniglot fetches them)"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Omniglot root folder not found")
    return root


def _list_zip(source: Source) -> dict[str, list[str]]:
    """``Alphabet/characterNN`` -> sorted member names, checking the release layout."""
    with open_zip(source.path) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir() and not is_hidden(i.filename)]
    chars: dict[str, list[str]] = {}
    for name in names:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != source.set_name or not all(parts):
            raise ValueError(
                f"{source.path}: unexpected layout: member {name!r} is not "
                f"{source.set_name}/<Alphabet>/<characterNN>/<drawing>.png"
            )
        if not parts[3].lower().endswith(".png"):
            raise ValueError(f"{source.path}:{name}: not a PNG image (Omniglot drawings are PNG files)")
        chars.setdefault(f"{parts[1]}/{parts[2]}", []).append(name)
    if not chars:
        raise ValueError(f"{source.path}: no images under {source.set_name}/ (is the archive empty?)")
    return {k: sorted(v) for k, v in chars.items()}


def _list_folder(source: Source) -> dict[str, list[str]]:
    """``Alphabet/characterNN`` -> sorted paths relative to the set folder, checking the layout."""
    chars: dict[str, list[str]] = {}
    for alphabet in _entries(source.path, source, want_dirs=True):
        for char in _entries(source.path / alphabet, source, want_dirs=True):
            files = _entries(source.path / alphabet / char, source, want_dirs=False)
            for f in files:
                if not f.lower().endswith(".png"):
                    raise ValueError(f"{source.path / alphabet / char / f}: not a PNG image")
            if not files:
                raise ValueError(f"{source.path / alphabet / char}: character folder has no images")
            chars[f"{alphabet}/{char}"] = [f"{alphabet}/{char}/{f}" for f in sorted(files)]
    if not chars:
        raise ValueError(f"{source.path}: no images in <Alphabet>/<characterNN>/ folders")
    return chars


def _entries(folder: Path, source: Source, want_dirs: bool) -> list[str]:
    """Sorted visible entries of ``folder``, all folders (or all files) as the layout requires."""
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            if is_hidden(entry.name):
                continue
            if entry.is_dir() != want_dirs:
                kind = "folder" if want_dirs else "file"
                raise ValueError(
                    f"{entry.path}: unexpected layout: expected a {kind} here "
                    f"({source.set_name}/<Alphabet>/<characterNN>/<drawing>.png)"
                )
            out.append(entry.name)
    return sorted(out)


def _decode(
    sources: dict[str, Source], listings: dict[str, dict[str, list[str]]], image_size: int
) -> tuple[dict[str, Tensor], dict]:
    """Decode each character once, from the first set (in ``SETS`` order) that has it."""
    characters: list[str] = []
    index: dict[str, int] = {}
    sets: dict[str, list[int]] = {}
    plan: dict[str, list[tuple[int, list[str]]]] = {}
    for name in listings:
        sets[name], plan[name] = [], []
        for key in sorted(listings[name]):
            if key not in index:
                index[key] = len(characters)
                characters.append(key)
                plan[name].append((index[key], listings[name][key]))
            sets[name].append(index[key])
    total = sum(len(m) for todo in plan.values() for _, m in todo)
    logger.info("decoding %d Omniglot images at %dx%d (once; later loads use the cache)", total, image_size, image_size)
    images = np.empty((total, 1, image_size, image_size), dtype=np.uint8)  # [n, 1, S, S]
    character = np.empty(total, dtype=np.int64)  # [n]
    options = {"channels": 1, "size": image_size, "invert": True}
    i = 0
    for name, todo in plan.items():
        source = sources[name]
        if source.is_zip:
            with open_zip(source.path) as archive:
                for char, members in todo:
                    for member in members:
                        images[i], character[i] = read_zip_image(archive, member, **options), char
                        i += 1
        else:
            for char, members in todo:
                for member in members:
                    images[i], character[i] = read_image(source.path / member, **options), char
                    i += 1
    tensors = {"images": torch.from_numpy(images), "character": torch.from_numpy(character)}
    return tensors, {"characters": characters, "sets": sets}


def _split_file(root: Path, split: str):
    """``root/splits/vinyals/<split>.txt`` when present, else the packaged copy."""
    local = root / "splits" / "vinyals" / f"{split}.txt"
    if local.is_file():
        return local
    return resources.files("fewshot.data").joinpath("splits", "vinyals", f"{split}.txt")


def _vinyals_classes(
    root: Path, split: str, rotations: bool, available: set[str], sources: dict[str, Source]
) -> list[tuple[str, int]]:
    path = _split_file(root, split)
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


def _character_classes(
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


def _scheme_classes(
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
