"""Search overhead on NAS-Bench-Macro: each strategy's own time per query, and the wall time of
100 seeds x 300 queries of regularized evolution (loading the table not included; printed apart).

    python benchmarks/nas_overhead.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from fewshot.nas import search
from fewshot.nas.benchmarks import nas_bench_macro
from fewshot.nas.strategies import STRATEGIES, make_strategy


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--budget", type=int, default=300)
    p.add_argument("--overhead-seeds", type=int, default=10, help="seeds per strategy for the per-query times")
    args = p.parse_args(argv)
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    t0 = time.perf_counter()
    bench = nas_bench_macro()
    print(f"load NAS-Bench-Macro ({bench.space.size} architectures): {time.perf_counter() - t0:.2f} s")

    print(
        f"\n| strategy | strategy time / query (mean, {args.overhead_seeds} seeds x {args.budget}) "
        "| table lookup / query | search wall / query |"
    )
    print("| --- | --- | --- | --- |")
    for name in STRATEGIES:
        own, lookup, wall = [], [], []
        for seed in range(args.overhead_seeds):
            t = time.perf_counter()
            result = search(bench, make_strategy(name, bench.space), args.budget, seed)
            wall.append((time.perf_counter() - t) / result.queries)
            own += [r["strategy_s"] for r in result.history]
            lookup += [r["evaluate_s"] for r in result.history]
        print(
            f"| {name} | {np.mean(own) * 1e6:.0f} us | {np.mean(lookup) * 1e6:.1f} us | {np.mean(wall) * 1e6:.0f} us |"
        )

    t = time.perf_counter()
    regrets = [search(bench, make_strategy("evolution", bench.space), args.budget, s).regret for s in range(args.seeds)]
    wall = time.perf_counter() - t
    print(
        f"\nevolution, {args.seeds} seeds x {args.budget} queries: {wall:.2f} s wall "
        f"({wall / (args.seeds * args.budget) * 1e6:.0f} us per query), mean final regret {np.mean(regrets):.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
