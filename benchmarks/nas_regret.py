"""Regret of every NAS strategy on a tabular benchmark, over many seeds (prints a markdown table).

    python benchmarks/nas_regret.py                               # NAS-Bench-Macro, 100 seeds x 300 queries
    python benchmarks/nas_regret.py --metric mean_acc             # the search sees the mean of the 3 runs
    python benchmarks/nas_regret.py --space synthetic-nb201       # a synthetic NAS-Bench-201-format CSV
    python benchmarks/nas_regret.py --space my.csv --arch-column arch_str --metric valid_acc --report-metric test_acc

Regret = best mean report metric in the table - mean report metric of the architecture the strategy
returns (its best observed query). On NAS-Bench-Macro a query draws one of the three runs by the
search's seed unless --metric mean_acc.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fewshot.nas.benchmarks import get_benchmark, nas_bench_macro
from fewshot.nas.compare import compare, format_table
from fewshot.nas.data_paths import nas_bench_macro_path
from fewshot.nas.spaces import load_table
from fewshot.nas.strategies import STRATEGIES

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, numpy {np.__version__}"
    )


def write_synthetic_nb201(path: Path, runs: int = 3, seed: int = 0) -> Path:
    """All 5^6 NAS-Bench-201 cells with a made-up accuracy: per-edge operation effects, pairwise interactions
    between edges, 10% for cells with no path from input to output, and per-run noise (sd 0.3)."""
    rng = np.random.default_rng(seed)
    base = np.array([-2.0, 0.5, 1.0, 2.0, 0.0])  # none, skip, conv1x1, conv3x3, pool
    effect = base[None, :] + 0.6 * rng.standard_normal((6, 5))  # [edge, op]
    interaction = 0.25 * rng.standard_normal((6, 5, 6, 5))  # [edge, op, edge, op]
    edges = [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]  # the order of the cell string
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_str", "valid_acc", "test_acc"])
        for ops in itertools.product(range(5), repeat=6):
            reach = {0}
            for (a, b), op in zip(edges, ops):
                if a in reach and op != 0:
                    reach.add(b)
            if 3 not in reach:
                mean = 10.0
            else:
                mean = 85.0 + sum(effect[e, o] for e, o in enumerate(ops))
                mean += sum(interaction[e, ops[e], d, ops[d]] for e in range(6) for d in range(e + 1, 6))
            cell = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*(NB201_OPS[o] for o in ops))
            for _ in range(runs):
                w.writerow([cell, f"{mean + 0.3 * rng.standard_normal():.4f}", f"{mean:.4f}"])
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="nas-bench-macro", help="nas-bench-macro, synthetic-nb201, or a table path")
    p.add_argument("--arch-column")
    p.add_argument("--metric", help="nas-bench-macro: test_acc (one run per query, default) or mean_acc")
    p.add_argument("--report-metric")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--budget", type=int, default=300)
    p.add_argument("--checkpoints", default="50,100,300")
    p.add_argument("--json", help="also write the full curves to this JSON file")
    args = p.parse_args(argv)

    if args.space == "nas-bench-macro" and args.metric not in (None, "test_acc"):
        problem = load_table(nas_bench_macro_path(), "arch", args.metric, "test_acc", name="nas-bench-macro")
    elif args.space == "nas-bench-macro":
        problem = nas_bench_macro()
    elif args.space == "synthetic-nb201":
        folder = Path(tempfile.mkdtemp(prefix="nas-nb201-"))
        path = write_synthetic_nb201(folder / "synthetic-nb201.csv")
        problem = load_table(path, "arch_str", "valid_acc", "test_acc", name="synthetic-nb201")
        path.unlink()
        folder.rmdir()
    else:
        problem = get_benchmark(args.space, args.arch_column, args.metric, args.report_metric)
    checkpoints = [int(q) for q in args.checkpoints.split(",")]
    print(
        f"# {problem.name}: {problem.space.size} architectures, search metric {problem.metric_name!r}, "
        f"report {problem.report_name!r}, optimum {problem.optimum:.4f}"
    )
    print(f"# {args.seeds} seeds x {args.budget} queries; machine: {machine()}")
    print(f"# command: python {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")
    t0 = time.perf_counter()
    result = compare(
        problem, {name: {} for name in args.strategies}, args.budget, list(range(args.seeds)), progress=None
    )
    print(format_table(result, checkpoints))
    print(f"# total wall time {time.perf_counter() - t0:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
