"""SMILES lists -> feature tables, cached on disk (content-addressed, written atomically)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from fewshot.data.cache import atomic_save, cache_dir, cache_key
from fewshot.molecules.descriptors import RDKitDescriptors, Standardizer
from fewshot.molecules.features import DenseFeatures, Features, GraphFeatures, JoinedFeatures, RowFeatures
from fewshot.molecules.fingerprints import ECFP
from fewshot.molecules.graphs import MolGraphs
from fewshot.molecules.smiles import parse_smiles, to_mol

logger = logging.getLogger(__name__)


class Featurizer(Protocol):
    """Molecules -> arrays: ``kind`` "dense" or "graph", ``name`` and ``spec()`` key the cache."""

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...

    def spec(self) -> dict: ...

    def compute(self, mols: list) -> dict[str, np.ndarray]: ...


VERSION = 1  # bump when a featurizer's output changes for the same settings
FEATURIZERS: dict[str, Callable[..., Featurizer]] = {"ecfp": ECFP, "rdkit2d": RDKitDescriptors, "graph": MolGraphs}


@dataclass
class FeatureTable:
    """Features of the molecules of an input list that parsed; row ``i`` is input row ``kept[i]``."""

    features: Features
    kept: Tensor  # [M'] long
    canonical: list[str] = field(repr=False)
    total: int = 0

    @property
    def num_invalid(self) -> int:
        return self.total - len(self.kept)

    def __len__(self) -> int:
        return len(self.kept)


def make_featurizers(spec: object) -> list[Featurizer]:
    """Featurizers from a spec: ``"ecfp"``, ``"ecfp+graph"``, ``{"ecfp": {"radius": 3}}``,
    a featurizer object, or a list of any of these."""
    if isinstance(spec, str):
        return [_make(name, {}) for name in spec.split("+")]
    if isinstance(spec, dict):
        return [_make(name, dict(opts or {})) for name, opts in spec.items()]
    if isinstance(spec, (list, tuple)):
        return [f for item in spec for f in make_featurizers(item)]
    if hasattr(spec, "compute") and hasattr(spec, "spec") and hasattr(spec, "kind"):
        return [spec]  # type: ignore[list-item]  # duck-typed: a Featurizer checked by its attributes
    raise TypeError(f"cannot make featurizers from {spec!r}")


def dense_width(featurizers: Sequence[Featurizer]) -> int:
    """Width of the fixed-size part (fingerprints, descriptors) of what ``featurizers`` produce."""
    return sum(f.dim for f in featurizers if isinstance(f, (ECFP, RDKitDescriptors)))


def _make(name: str, options: dict) -> Featurizer:
    name = name.strip().lower()
    if name not in FEATURIZERS:
        raise ValueError(f"unknown featurizer {name!r}; valid: {', '.join(FEATURIZERS)}")
    return FEATURIZERS[name](**options)


def featurize(
    smiles: Sequence[str], featurizers="ecfp", *, cache: bool = True, where: str = "input", report: bool = True
) -> FeatureTable:
    """Parse ``smiles`` (invalid ones skipped with one warning) and featurize the rest.

    Results are cached under ``<fewshot cache>/molecules`` keyed by the SMILES and the
    featurizer settings; files are written under a temporary name and renamed, so an
    error or interruption never leaves a half-written entry. ``report=False``: the skip
    warning is left to the caller (logged at DEBUG here).
    """
    level = logging.WARNING if report else logging.DEBUG
    featurizers = make_featurizers(featurizers)
    smiles = list(smiles)
    digest = hashlib.sha256("\n".join(map(str, smiles)).encode()).hexdigest()
    parsed = None

    def molecules():
        nonlocal parsed
        if parsed is None:
            parsed = parse_smiles(smiles, where=where, level=level)
        return parsed

    head = _cached("parse", {"smiles": digest, "n": len(smiles)}, cache, lambda: _parse_arrays(molecules()))
    kept, canonical = head[0]["kept"].long(), head[1]["canonical"]
    if parsed is None and len(kept) < len(smiles):
        logger.log(level, "%s: skipped %d of %d invalid SMILES (cached)", where, len(smiles) - len(kept), len(smiles))
    parts = []
    for f in featurizers:

        def build(f=f):
            # the parse entry may come from the cache: re-read the kept inputs, as a fresh parse would
            mols = parsed.mols if parsed is not None else [to_mol(smiles[i]) for i in kept.tolist()]
            return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in f.compute(mols).items()}, {}

        arrays, _ = _cached(f.name, {"smiles": digest, "spec": f.spec()}, cache, build)
        parts.append(_features(f, arrays))
    features = parts[0] if len(parts) == 1 else JoinedFeatures(parts)
    return FeatureTable(features, kept, canonical, len(smiles))


def _parse_arrays(parsed) -> tuple[dict[str, Tensor], dict]:
    return {"kept": torch.tensor(parsed.kept, dtype=torch.long)}, {"canonical": parsed.canonical}


def _features(featurizer: Featurizer, arrays: dict[str, Tensor]) -> DenseFeatures | GraphFeatures:
    if featurizer.kind == "graph":
        return GraphFeatures(arrays)
    if "bits" in arrays:
        return DenseFeatures(bits=arrays["bits"])
    return DenseFeatures(values=arrays["values"], needs_standardizer=isinstance(featurizer, RDKitDescriptors))


def feature_parts(features: Features) -> list[Features]:
    """The tables side by side in ``features`` (itself when it is not joined; an assay's rows: their table's)."""
    if isinstance(features, RowFeatures):
        return feature_parts(features.table)
    return list(features.parts) if isinstance(features, JoinedFeatures) else [features]


def descriptor_parts(features: Features) -> list[DenseFeatures]:
    """The parts of ``features`` holding raw descriptors, to be standardised with training statistics."""
    return [p for p in feature_parts(features) if isinstance(p, DenseFeatures) and p.needs_standardizer]


def fit_standardizers(features: Features, rows: Tensor) -> None:
    """Standardise every descriptor part of ``features`` with the statistics of ``rows`` (training molecules)."""
    for part in descriptor_parts(features):
        part.transform = Standardizer.fit(part.raw(rows))


def standardizers(features: Features) -> list[Standardizer]:
    return [p.transform for p in descriptor_parts(features) if isinstance(p.transform, Standardizer)]


def set_standardizers(features: Features, fitted: list[Standardizer]) -> None:
    """Apply already-fitted standardizers (from the training split) to ``features``' descriptor parts."""
    for part, s in zip(descriptor_parts(features), fitted):
        part.transform = s


def _cached(kind: str, parts: dict, use_cache: bool, build) -> tuple[dict[str, Tensor], dict]:
    if not use_cache:
        return build()
    path = Path(cache_dir()) / "molecules" / f"{cache_key(kind, version=VERSION, **parts)}.safetensors"
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("fewshot", "{}"))
            return load_file(str(path)), meta
        except (SafetensorError, OSError, ValueError):  # a damaged entry is rebuilt
            path.unlink(missing_ok=True)
    tensors, meta = build()
    atomic_save(tensors, path, {"fewshot": json.dumps(meta)})
    return tensors, meta
