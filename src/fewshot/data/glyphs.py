"""``glyphs``: the built-in Omniglot-like dataset, rendered from the DejaVu fonts shipped
with matplotlib, so it needs no download.

A class is one Unicode character (letters of a dozen scripts, math operators, arrows,
shapes, dingbats...) that DejaVu Sans really draws; near-empty glyphs and near-duplicates
of an earlier class (Latin ``A`` / Greek ``Alpha`` / Cyrillic ``A``, ``o`` / ``O``...) are
dropped by comparing small renders. Each class has ``instances`` images (20, like
Omniglot), each drawn with its own font face, stroke width, affine distortion, smooth
elastic wobble, blur and pixel flips, then box-downsampled to ``image_size``: bright
strokes on a 0 background, one channel, uint8.

Randomness is only ``numpy.random.default_rng(seed)`` uniforms; glyphs are rasterised by
FreeType (Pillow's basic layout, never raqm) and then distorted with elementwise IEEE
arithmetic only (no BLAS, no vectorised transcendental functions), so a seed gives the
same bytes on every run and machine with the same fonts and FreeType. The result is
cached through :func:`fewshot.data.cache.cached`, keyed by the generator version, the
options, the seed and the font/rasteriser versions. Classes are split train/val/test
(60/15/25%, trainval = train + val) by a hash of their code point, the same for every
seed and image size.

The pieces: fonts and rendering in :mod:`fewshot.data.glyph_render`, the choice of classes in
:mod:`fewshot.data.glyph_classes`, the distorted instances in :mod:`fewshot.data.glyph_instances`;
this module splits the classes and serves the cached images as a dataset.
"""

from __future__ import annotations

import hashlib
import unicodedata

import torch

from fewshot.data.cache import cache_key, cached
from fewshot.data.dataset import FewShotDataset
from fewshot.data.glyph_classes import BLOCKS, select_classes
from fewshot.data.glyph_instances import GENERATOR_VERSION, generate
from fewshot.data.glyph_render import FACES, font_path, fonts_id
from fewshot.data.images import preprocessing

__all__ = [
    "BLOCKS",
    "FACES",
    "GENERATOR_VERSION",
    "SPLIT_FRACTIONS",
    "class_name",
    "font_path",
    "load_glyphs",
    "select_classes",
    "split_classes",
]

SPLIT_FRACTIONS = {"train": 0.60, "val": 0.15, "test": 0.25}


def load_glyphs(
    root=None, split: str = "train", *, image_size: int = 28, instances: int = 20, seed: int = 0
) -> FewShotDataset:
    """The ``glyphs`` dataset for ``split`` (train, val, test or trainval).

    ``root`` is unused: the images are generated, then cached in ``$FEWSHOT_CACHE``.
    The returned dataset has ``data [n, 1, image_size, image_size]`` (uint8) and a
    ``preprocessing`` dict describing how the images were made.
    """
    if split not in (*SPLIT_FRACTIONS, "trainval"):
        raise ValueError(f"unknown split {split!r}; valid splits: train, val, test, trainval")
    if not 8 <= image_size <= 256:
        raise ValueError(f"image_size must lie in 8..256, got {image_size}")
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    key = cache_key(
        "glyphs", version=GENERATOR_VERSION, image_size=image_size, instances=instances, seed=seed, fonts=fonts_id()
    )
    tensors, _ = cached(key, lambda: generate(image_size, instances, seed))
    codepoints = tensors["codepoints"].tolist()  # [C] every class, in generation order
    members = split_classes(codepoints)[split]  # class indices of this split
    data = tensors["data"].view(len(codepoints), instances, 1, image_size, image_size)[members]
    dataset = FewShotDataset(
        data.reshape(-1, 1, image_size, image_size),  # [n, 1, H, W] uint8
        torch.arange(len(members)).repeat_interleave(instances),
        classes=[class_name(codepoints[c]) for c in members],
        name=f"glyphs/{split}",
    )
    # Strokes are bright on a dark background, like Omniglot after its inversion: images
    # drawn dark on light (scans, the Omniglot PNGs) are inverted when fed to a learner.
    dataset.preprocessing = preprocessing(image_size, channels=1, inverted=True)
    return dataset


def split_classes(codepoints: list[int]) -> dict[str, list[int]]:
    """Class indices per split: classes ordered by a hash of their code point, then cut
    60/15/25%. The partition does not depend on the seed, the image size or the platform."""
    order = sorted(range(len(codepoints)), key=lambda c: hashlib.sha256(b"glyphs:%d" % codepoints[c]).digest())
    n_train = round(SPLIT_FRACTIONS["train"] * len(order))
    n_val = round(SPLIT_FRACTIONS["val"] * len(order))
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    parts["trainval"] = parts["train"] + parts["val"]
    return {name: sorted(part) for name, part in parts.items()}


def class_name(codepoint: int) -> str:
    return f"U+{codepoint:04X} {unicodedata.name(chr(codepoint), '')}".rstrip()
