"""Synthetic tabular benchmarks written as files, in both architecture-string formats."""

import csv
import itertools
from pathlib import Path

import numpy as np

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def choice_value(arch: tuple[int, ...]) -> float:
    """Additive in the positions (higher choices better, later positions weigh more), plus a small interaction."""
    return float(sum((i + 1) * c for i, c in enumerate(arch)) + 0.5 * (arch[0] == arch[-1]))


def write_choice_table(path: Path, positions=4, choices=3, runs=1, noise=0.0, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "acc", "test_acc"])
        for arch in itertools.product(range(choices), repeat=positions):
            value = choice_value(arch)
            for _ in range(runs):
                w.writerow(["".join(map(str, arch)), value + noise * rng.standard_normal(), value + 0.1])
    return path


def cell_string(ops) -> str:
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def cell_value(ops) -> float:
    """Convolutions good, 'none' bad, 3x3 best on the edges into the output node."""
    score = {"none": -1.0, "skip_connect": 0.2, "nor_conv_1x1": 0.6, "nor_conv_3x3": 1.0, "avg_pool_3x3": 0.1}
    return float(sum(score[o] * (2 if i >= 3 else 1) for i, o in enumerate(ops)))


def write_cell_table(path: Path, ops=NB201_OPS, runs=2, noise=0.1, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_str", "valid_acc", "test_acc"])
        for cell in itertools.product(ops, repeat=6):
            value = cell_value(cell)
            for _ in range(runs):
                w.writerow([cell_string(cell), value + noise * rng.standard_normal(), value])
    return path
