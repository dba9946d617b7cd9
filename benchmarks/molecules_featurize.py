"""Featurisation speed: molecules per second from SMILES, per featurizer, on one CPU thread.

The first ``--n`` SMILES of the FS-Mol test assays (or of Tox21), featurised without the
cache (RDKit parse + canonical SMILES + features), then read back from a warm cache.

    OMP_NUM_THREADS=1 python benchmarks/molecules_featurize.py [--n 5000] [--source fsmol|tox21]
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from fewshot.molecules.featurize import featurize, make_featurizers
from fewshot.molecules.fsmol import fsmol_files, read_fsmol_task
from fewshot.molecules.smiles import parse_smiles

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", REPO.parent / "shared" / "data")) / "molecules"


def smiles_of(source: str, n: int) -> list[str]:
    out: list[str] = []
    if source == "tox21":
        with open(DATA / "tox21.csv") as f:
            out = [row["smiles"] for row in csv.DictReader(f)]
        return out[:n]
    for path in fsmol_files(DATA / "fs-mol", "test"):
        out += read_fsmol_task(path)[0]
        if len(out) >= n:
            break
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--source", choices=("fsmol", "tox21"), default="fsmol")
    parser.add_argument("--featurizers", default="ecfp,ecfp-counts,graph,rdkit2d")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # the invalid SMILES are counted in the table instead
    smiles = smiles_of(args.source, args.n)
    print(f"{len(smiles)} SMILES from {args.source}; one thread; load average {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    parsed = parse_smiles(smiles)
    parse_s = time.perf_counter() - t
    print(f"{'step':<30}{'mol/s':>10}{'seconds':>10}")
    print(f"{'parse + canonical':<30}{len(smiles) / parse_s:>10.0f}{parse_s:>10.2f}  ({parsed.num_invalid} invalid)")
    specs = {"ecfp": "ecfp", "ecfp-counts": {"ecfp": {"counts": True}}, "graph": "graph", "rdkit2d": "rdkit2d"}
    for name in args.featurizers.split(","):
        featurizer = make_featurizers(specs[name])[0]
        t = time.perf_counter()
        featurizer.compute(parsed.mols)
        compute_s = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as cache:
            os.environ["FEWSHOT_CACHE"] = cache
            t = time.perf_counter()
            table = featurize(smiles, featurizer, where="bench")
            cold = time.perf_counter() - t
            t = time.perf_counter()
            table = featurize(smiles, featurizer, where="bench")
            table.features.take(torch.arange(len(table)))
            warm = time.perf_counter() - t
        print(f"{name + ' (features only)':<30}{len(smiles) / compute_s:>10.0f}{compute_s:>10.2f}")
        print(f"{name + ' cold, cached':<30}{len(smiles) / cold:>10.0f}{cold:>10.2f}")
        print(f"{name + ' warm cache':<30}{len(smiles) / warm:>10.0f}{warm:>10.2f}")


if __name__ == "__main__":
    main()
