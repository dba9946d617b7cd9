"""Deployment helpers: a support set and queries given as SMILES -> each query's probability of activity.

Unlike training data, user input is parsed strictly: an invalid SMILES is one
``InvalidSmilesError`` naming the set and index, never a silent skip that would shift rows.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from fewshot.molecules.descriptors import Standardizer
from fewshot.molecules.featurize import descriptor_parts, featurize, make_featurizers, set_standardizers
from fewshot.molecules.smiles import parse_smiles
from fewshot.molecules.tasks import check_support

MAX_SUPPORT, MAX_QUERY = 1024, 10000  # limits for one request


def features_of(smiles: Sequence[str], featurizer, where: str, standardizers: Sequence[Standardizer] = ()) -> Tensor:
    """Features [n, D] of user SMILES; ``InvalidSmilesError`` names the first invalid index.

    ``standardizers``: the training statistics of the featurizer's descriptor parts, one each.
    """
    parse_smiles(smiles, strict=True, where=where)
    table = featurize(list(smiles), make_featurizers(featurizer), where=where, cache=False)  # requests are not cached
    parts = descriptor_parts(table.features)
    if len(parts) != len(standardizers):
        raise ValueError(f"{len(parts)} descriptor featurizers but {len(standardizers)} fitted standardizers")
    set_standardizers(table.features, list(standardizers))
    return table.features.take(torch.arange(len(table)))


def predict_smiles(
    learner,
    featurizer,
    support_smiles: Sequence[str],
    support_labels: Sequence[int],
    query_smiles: Sequence[str],
    *,
    max_support: int = MAX_SUPPORT,
    max_query: int = MAX_QUERY,
    standardizers: Sequence[Standardizer] = (),
) -> Tensor:
    """Probabilities [Q] that each query molecule is active, from a labelled support set.

    ``learner``: an algorithm with ``adapt`` (probability = softmax of its two logits) or a
    scorer returning probabilities (the scikit-learn baselines). Errors name the problem:
    empty or one-class support, labels not 0/1, too many molecules, invalid SMILES.
    ``standardizers``: the fitted descriptor statistics saved with the learner, if any.
    """
    if len(support_smiles) != len(support_labels):
        raise ValueError(f"{len(support_smiles)} support SMILES but {len(support_labels)} labels")
    if not 0 < len(query_smiles) <= max_query:
        raise ValueError(f"need between 1 and {max_query} query molecules, got {len(query_smiles)}")
    if len(support_smiles) > max_support:
        raise ValueError(f"at most {max_support} support molecules, got {len(support_smiles)}")
    bad = [i for i, y in enumerate(support_labels) if y not in (0, 1, True, False)]
    if bad:
        raise ValueError(f"support labels must be 0 or 1; index {bad[0]} is {support_labels[bad[0]]!r}")
    support_y = torch.tensor([int(y) for y in support_labels], dtype=torch.long)
    check_support(support_y)
    support_x = features_of(support_smiles, featurizer, "support", standardizers)  # [S, D]
    query_x = features_of(query_smiles, featurizer, "query", standardizers)  # [Q, D]
    with torch.no_grad():
        if hasattr(learner, "adapt"):
            logits = learner.adapt(support_x, support_y)(query_x)  # [Q, 2]
            return logits.softmax(-1)[:, 1]
        return learner(support_x, support_y, query_x).float()


def read_smiles_csv(path, labelled: bool) -> tuple[list[str], list[int] | None]:
    """A support (``smiles,label``) or query (``smiles``) CSV; the SMILES column may be named smiles."""
    with open(Path(path), newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no molecules")
    columns = {c.lower(): c for c in rows[0]}
    if "smiles" not in columns:
        raise ValueError(f"{path}: no 'smiles' column (columns: {', '.join(rows[0])})")
    smiles = [r[columns["smiles"]] or "" for r in rows]
    if not labelled:
        return smiles, None
    if "label" not in columns:
        raise ValueError(f"{path}: a support CSV needs a 'label' column (0 inactive, 1 active)")
    labels = []
    for i, r in enumerate(rows):
        value = (r[columns["label"]] or "").strip()
        if value not in ("0", "1", "0.0", "1.0"):
            raise ValueError(f"{path}: row {i} label {value!r} is not 0 or 1")
        labels.append(int(float(value)))
    return smiles, labels
