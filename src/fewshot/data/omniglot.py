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

Reading and decoding the release is :mod:`fewshot.data.omniglot_release`, the schemes are
:mod:`fewshot.data.omniglot_splits`; this module builds a split's dataset from the two.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from fewshot.data.dataset import FewShotDataset
from fewshot.data.images import check_options, preprocessing
from fewshot.data.omniglot_release import check_root, decode_sources, find_sources
from fewshot.data.omniglot_splits import (
    CHARACTER_SPLIT,
    ROTATIONS,
    SCHEMES,
    SPLITS,
    VAL_ALPHABETS,
    character_classes,
    scheme_classes,
    vinyals_classes,
)

__all__ = ["CHARACTER_SPLIT", "ROTATIONS", "SCHEMES", "SPLITS", "VAL_ALPHABETS", "build_split", "load_omniglot"]


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
    root = check_root(root)
    sources = find_sources(root)
    images, character, characters, sets = decode_sources(sources, image_size)

    if splits == "vinyals":
        classes = vinyals_classes(root, split, rotations, set(characters), sources)
    elif splits == "characters":
        classes = character_classes(root, split, rotations, characters, sets)
    else:
        classes = scheme_classes(root, splits, split, rotations, characters, sets)
    position = {c: i for i, c in enumerate(characters)}
    data, labels = build_split(images, character, [position[c] for c, _ in classes], [r for _, r in classes])
    names = [f"{c}/rot{r:03d}" if rotations else c for c, r in classes]
    dataset = FewShotDataset(data, labels, names, name=f"omniglot-{splits}-{split}")
    dataset.preprocessing = preprocessing(image_size, channels=1, inverted=True)
    return dataset


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
