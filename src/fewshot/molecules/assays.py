"""Assay tables (MoleculeNet style): a SMILES column and one binary column per assay, blank = not measured."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from fewshot.molecules.features import RowFeatures
from fewshot.molecules.featurize import featurize, fit_standardizers
from fewshot.molecules.tasks import AssayTask, AssayTasks

logger = logging.getLogger(__name__)
SMILES_COLUMNS = ("smiles", "canonical_smiles", "mol", "molecule")
# name -> (file, number of training assays first, number of test assays last), as the few-shot papers
STANDARD_SPLITS = {"tox21": ("tox21.csv", 9, 3), "sider": ("sider.csv", 21, 6), "muv": ("muv.csv.gz", 12, 5)}
POSITIVE, NEGATIVE = {"1", "1.0", "true", "active"}, {"0", "0.0", "false", "inactive"}


@dataclass
class AssayTable:
    """Raw table: ``smiles`` [M], ``assays`` [T] names, ``labels`` float [M, T] (NaN = not measured)."""

    smiles: list[str] = field(repr=False)
    assays: list[str]
    labels: Tensor = field(repr=False)
    path: str = ""


def read_assay_table(path, smiles_column: str | None = None, ignore: tuple[str, ...] = ()) -> AssayTable:
    """Read a CSV or .csv.gz assay table; one clear ``ValueError`` for a malformed table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"assay table not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(c.strip() for c in rows[0]):
        raise ValueError(f"{path}: empty file, expected a header with a SMILES column and assay columns")
    header = [c.strip() for c in rows[0]]
    column = _smiles_column(header, smiles_column, path)
    assays = [i for i, name in enumerate(header) if i != column and name not in ignore]
    if not assays:
        raise ValueError(f"{path}: no assay columns besides the SMILES column {header[column]!r}")
    smiles, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        row = row + [""] * (len(header) - len(row))
        smiles.append(row[column].strip())
        labels.append([_label(row[i], header[i], line, path) for i in assays])
    if not smiles:
        raise ValueError(f"{path}: no molecules below the header")
    return AssayTable(smiles, [header[i] for i in assays], torch.tensor(labels, dtype=torch.float32), str(path))


def _smiles_column(header: list[str], wanted: str | None, path: Path) -> int:
    lower = [h.lower() for h in header]
    if wanted is not None:
        if wanted.lower() not in lower:
            raise ValueError(f"{path}: no SMILES column {wanted!r}; columns are {', '.join(header)}")
        return lower.index(wanted.lower())
    for name in SMILES_COLUMNS:
        if name in lower:
            return lower.index(name)
    raise ValueError(
        f"{path}: no SMILES column (looked for {', '.join(SMILES_COLUMNS)}; columns are "
        f"{', '.join(header[:8])}{' ...' if len(header) > 8 else ''}); name it with smiles_column="
    )


def _label(cell: str, assay: str, line: int, path: Path) -> float:
    value = cell.strip().lower()
    if value in ("", "nan", "na"):
        return math.nan
    if value in POSITIVE:
        return 1.0
    if value in NEGATIVE:
        return 0.0
    raise ValueError(f"{path}: assay {assay!r} line {line}: {cell!r} is not a binary label (0, 1 or blank)")


def split_assays(assays: list[str], train=None, test=None, val=None) -> dict[str, list[str]]:
    """Assay names per split. ``train``/``test``/``val``: a list of names, or an int: the first
    ``train`` assays, the last ``test`` assays (the papers' "first N / last M"). Unnamed ones stay unused."""
    out = {}
    if isinstance(train, int):
        train = assays[:train]
    if isinstance(test, int):
        test = assays[len(assays) - test :] if test else []
    if train is None and test is None:
        raise ValueError("give the train/test assay split: names or counts (first N / last M)")
    if train is None:
        train = [a for a in assays if a not in set(test) | set(val or [])]
    if test is None:
        test = [a for a in assays if a not in set(train) | set(val or [])]
    for split, names in (("train", train), ("test", test), ("val", val or [])):
        unknown = [n for n in names if n not in assays]
        if unknown:
            raise ValueError(f"{split} assays not in the table: {', '.join(map(str, unknown))}")
        out[split] = list(names)
    overlap = set(out["train"]) & (set(out["test"]) | set(out["val"]))
    if overlap:
        raise ValueError(f"assays in both training and held-out splits: {', '.join(sorted(overlap))}")
    return out


def load_assays(
    root=None,
    split: str = "train",
    *,
    dataset: str | None = None,
    train_tasks=None,
    test_tasks=None,
    val_tasks=None,
    smiles_column: str | None = None,
    ignore: tuple[str, ...] = (),
    featurizer="ecfp",
    cache: bool = True,
) -> AssayTasks:
    """Task family of one split of an assay table.

    ``root``: the CSV/.csv.gz file, or a folder holding ``<dataset>.csv`` (``dataset`` one of
    tox21, sider, muv: their standard splits are the defaults). ``split``: train, test, val
    or trainval (train + val assays). Descriptor features are standardised with the
    statistics of the molecules measured in the training assays.
    """
    path, default = _resolve(root, dataset)
    table = read_assay_table(path, smiles_column, tuple(ignore))
    if train_tasks is None and test_tasks is None:
        if default is None:
            raise ValueError(f"{path}: give train_tasks and/or test_tasks (names, or counts first N / last M)")
        train_tasks, test_tasks = default
    names = split_assays(table.assays, train_tasks, test_tasks, val_tasks)
    wanted = {"train": names["train"], "test": names["test"], "val": names["val"]}
    wanted["trainval"] = names["train"] + names["val"]
    if split not in wanted:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(wanted)}")
    if not wanted[split]:
        raise ValueError(f"{path}: no {split} assays (give val_tasks= for a validation split)")
    feats = featurize(table.smiles, featurizer, cache=cache, where=str(path))
    row_of = torch.full((len(table.smiles),), -1, dtype=torch.long)
    row_of[feats.kept] = torch.arange(len(feats.kept))  # input row -> feature row (-1 invalid)
    column = {a: i for i, a in enumerate(table.assays)}
    measured = ~torch.isnan(table.labels) & (row_of >= 0)[:, None]  # [M, T]
    train_measured = measured[:, [column[a] for a in names["train"]]].any(1) if names["train"] else measured.any(1)
    fit_standardizers(feats.features, row_of[train_measured])  # descriptor statistics of training molecules
    tasks = []
    for a in wanted[split]:
        rows = measured[:, column[a]].nonzero().flatten()  # input rows measured for assay a
        labels = table.labels[rows, column[a]].long()
        tasks.append(AssayTask(a, RowFeatures(feats.features, row_of[rows]), labels))
    info = {"path": str(path), "molecules": len(table.smiles), "invalid_smiles": feats.num_invalid, "split": split}
    logger.info(
        "%s %s: %d assays, %d molecules (%d invalid)",
        path.name,
        split,
        len(tasks),
        len(table.smiles),
        info["invalid_smiles"],
    )
    return AssayTasks(tasks, name=f"{path.name}:{split}", info=info)


def _resolve(root, dataset: str | None) -> tuple[Path, tuple[int, int] | None]:
    if root is None:
        raise ValueError("load_assays needs root: an assay CSV file, or a folder with dataset=tox21|sider|muv")
    root = Path(root)
    if dataset is None and root.is_file():
        stem = root.name.split(".")[0].lower()
        std = STANDARD_SPLITS.get(stem)
        return root, (std[1], std[2]) if std else None
    name = (dataset or "").lower()
    if name not in STANDARD_SPLITS:
        raise ValueError(f"{root} is a folder: give dataset= one of {', '.join(STANDARD_SPLITS)} or a CSV path")
    file, n_train, n_test = STANDARD_SPLITS[name]
    return root / file, (n_train, n_test)


def load_tox21(root=None, split: str = "train", **options) -> AssayTasks:
    """Tox21 with the few-shot split (first 9 assays train, last 3 test); ``root`` its folder or file."""
    return load_assays(root, split, **_named("tox21", root, options))


def load_sider(root=None, split: str = "train", **options) -> AssayTasks:
    """SIDER with the few-shot split (first 21 train, last 6 test)."""
    return load_assays(root, split, **_named("sider", root, options))


def load_muv(root=None, split: str = "train", **options) -> AssayTasks:
    """MUV with the few-shot split (first 12 train, last 5 test)."""
    return load_assays(root, split, **_named("muv", root, options))


def _named(name: str, root, options: dict) -> dict:
    if root is not None and Path(root).is_file():
        return options
    return {"dataset": name, **options}
