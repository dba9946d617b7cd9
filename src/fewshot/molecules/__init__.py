"""Few-shot molecular property prediction: SMILES -> features and graphs, assay task families,
the FS-Mol and MoleculeNet protocols, chemistry metrics and methods. Needs the ``molecules``
extra (rdkit, scikit-learn); the core never imports this package.

Names are imported on first use, so ``fewshot.molecules.cli`` loads (and reports a missing
extra as one clear error) without RDKit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fewshot.molecules.assays import load_assays, load_muv, load_sider, load_tox21, read_assay_table
    from fewshot.molecules.evaluate import as_scorer, evaluate_protocol
    from fewshot.molecules.featurize import featurize, make_featurizers
    from fewshot.molecules.fsmol import load_fs_mol
    from fewshot.molecules.metrics import average_precision, delta_auprc, mean_ci95, roc_auc
    from fewshot.molecules.protocols import fsmol_episodes, moleculenet_episodes, stratified_support
    from fewshot.molecules.smiles import InvalidSmilesError, canonical_smiles, parse_smiles
    from fewshot.molecules.tasks import AssayTask, AssayTasks, check_support

_WHERE = {
    "assays": ("load_assays", "load_muv", "load_sider", "load_tox21", "read_assay_table"),
    "evaluate": ("as_scorer", "evaluate_protocol"),
    "featurize": ("featurize", "make_featurizers"),
    "fsmol": ("load_fs_mol",),
    "metrics": ("average_precision", "delta_auprc", "mean_ci95", "roc_auc"),
    "protocols": ("fsmol_episodes", "moleculenet_episodes", "stratified_support"),
    "smiles": ("InvalidSmilesError", "canonical_smiles", "parse_smiles"),
    "tasks": ("AssayTask", "AssayTasks", "check_support"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "AssayTask",
    "AssayTasks",
    "InvalidSmilesError",
    "as_scorer",
    "average_precision",
    "canonical_smiles",
    "check_support",
    "delta_auprc",
    "evaluate_protocol",
    "featurize",
    "fsmol_episodes",
    "load_assays",
    "load_fs_mol",
    "load_muv",
    "load_sider",
    "load_tox21",
    "make_featurizers",
    "mean_ci95",
    "moleculenet_episodes",
    "parse_smiles",
    "read_assay_table",
    "roc_auc",
    "stratified_support",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'fewshot.molecules' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fewshot.molecules.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
