"""FS-Mol (Stanley et al., 2021): ChEMBL assays as ``{train,valid,test}/CHEMBL<id>.jsonl.gz`` files."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import torch

from fewshot.molecules.descriptors import Standardizer
from fewshot.molecules.featurize import (
    Featurizer,
    descriptor_parts,
    featurize,
    make_featurizers,
    set_standardizers,
    standardizers,
)
from fewshot.molecules.tasks import AssayTask, AssayTasks

logger = logging.getLogger(__name__)
FOLDERS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}
STATS_TASKS = 200  # training assays whose molecules give the descriptor statistics for valid/test


def read_fsmol_task(path) -> tuple[list[str], list[int]]:
    """SMILES and 0/1 labels (``Property`` "1.0" active) of one assay file."""
    smiles, labels = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                label = float(row["Property"])
            except (ValueError, KeyError) as e:
                raise ValueError(f"{path}: line {line_no} is not an FS-Mol record with SMILES and Property") from e
            if label not in (0.0, 1.0):
                raise ValueError(f"{path}: line {line_no}: Property {row['Property']!r} is not 0.0 or 1.0")
            smiles.append(row.get("SMILES", ""))
            labels.append(int(label))
    return smiles, labels


def fsmol_files(root, split: str) -> list[Path]:
    if split not in FOLDERS:
        raise ValueError(f"unknown FS-Mol split {split!r}; valid: train, valid (or val), test")
    if root is None:
        raise ValueError("FS-Mol needs root: the folder holding train/, valid/ and test/")
    folder = Path(root) / FOLDERS[split]
    files = sorted(folder.glob("*.jsonl.gz"))
    if not files:
        raise FileNotFoundError(f"no FS-Mol assay files (*.jsonl.gz) in {folder}")
    return files


def load_fs_mol(
    root=None,
    split: str = "train",
    *,
    featurizer="ecfp",
    tasks: int | list[str] | None = None,
    cache: bool = True,
    stats_tasks: int = STATS_TASKS,
) -> AssayTasks:
    """Task family of one FS-Mol split; each assay featurised once and cached.

    ``tasks``: only the first N assays (sorted by name) or the named ones (quick runs).
    Descriptor features are standardised with the statistics of training assays' molecules
    (the loaded ones for ``split="train"``, else the first ``stats_tasks`` training assays).
    """
    files = fsmol_files(root, split)
    if isinstance(tasks, int):
        files = files[:tasks]
    elif tasks is not None:
        by_name = {f.name.split(".")[0]: f for f in files}
        missing = [t for t in tasks if t not in by_name]
        if missing:
            raise ValueError(f"FS-Mol {split} has no assays {', '.join(missing[:5])}")
        files = [by_name[t] for t in tasks]
    featurizers = make_featurizers(featurizer)
    loaded, invalid, total = [], 0, 0
    for path in files:
        smiles, labels = read_fsmol_task(path)
        table = featurize(smiles, featurizers, cache=cache, where=path.name, report=False)
        invalid, total = invalid + table.num_invalid, total + len(smiles)
        loaded.append(AssayTask(path.name.split(".")[0], table.features, torch.tensor(labels)[table.kept]))
    if descriptor_parts(loaded[0].features):
        fitted = _descriptor_stats(loaded if split == "train" else None, root, featurizers, cache, stats_tasks)
        for t in loaded:
            set_standardizers(t.features, fitted)
    missing = missing_from_release(root, split, [t.name for t in loaded]) if tasks is None else []
    info = {"root": str(root), "split": split, "molecules": total, "invalid_smiles": invalid, "missing": missing}
    level = logging.WARNING if invalid else logging.INFO
    logger.log(
        level, "FS-Mol %s: %d assays, %d molecules, %d invalid SMILES skipped", split, len(loaded), total, invalid
    )
    return AssayTasks(loaded, name=f"fs-mol:{split}", info=info)


def _descriptor_stats(
    train_tasks: list[AssayTask] | None, root, featurizers: list[Featurizer], cache: bool, stats_tasks: int
) -> list[Standardizer]:
    if train_tasks is None:
        train_tasks = load_fs_mol(root, "train", featurizer=featurizers, tasks=stats_tasks, cache=cache).tasks
        return standardizers(train_tasks[0].features)
    fitted = []
    for j in range(len(descriptor_parts(train_tasks[0].features))):
        values = torch.cat([descriptor_parts(t.features)[j].raw(torch.arange(len(t))) for t in train_tasks])
        fitted.append(Standardizer.fit(values))
    return fitted


def missing_from_release(root, split: str, names: list[str]) -> list[str]:
    """Release task names (``fsmol-0.1.json``) of this split that have no file here."""
    listing = Path(root) / "fsmol-0.1.json"
    if not listing.is_file():
        return []
    release = json.loads(listing.read_text()).get(FOLDERS[split], [])
    have = set(names)
    missing = [n for n in release if n not in have]
    if missing:
        logger.warning("FS-Mol %s: %d release assays have no file here: %s", split, len(missing), ", ".join(missing))
    return missing
