"""The Omniglot release on disk: finding its image sets, listing them and decoding every character once.

A set is a zip (``images_background.zip``) or its unpacked folder; both are checked against the
release layout ``<set>/<Alphabet>/<characterNN>/<drawing>.png``. Decoded images (resized, inverted
so strokes are 255 on 0) are cached as unrotated characters keyed by ``Alphabet/characterNN``, each
stored once even when several sets hold it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fewshot.data.cache import cache_key, cached, source_fingerprint
from fewshot.data.images import files_fingerprint, is_hidden, open_zip, read_image, read_zip_image

logger = logging.getLogger(__name__)

SETS = ("images_background", "images_evaluation", "images_background_small1", "images_background_small2")
FORMAT = 1  # bump when the decoded cache contents change


@dataclass(frozen=True)
class Source:
    """One image set: a zip archive, or its unpacked folder."""

    set_name: str
    path: Path

    @property
    def is_zip(self) -> bool:
        return self.path.suffix == ".zip"


def check_root(root) -> Path:
    if root is None:
        raise ValueError(
            "omniglot needs root=<folder with images_background.zip, images_evaluation.zip> "
            "(fewshot.data.download.download_omniglot fetches them)"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: Omniglot root folder not found")
    return root


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
    fingerprints: dict[str, object] = {}  # set -> fingerprint of its zip or of its listed files
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
