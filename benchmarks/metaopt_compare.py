"""Learned optimizers against tuned hand-designed ones on held-out optimizees.

For each family (random quadratics, an MLP on digits, a conv net on glyphs) the script meta-trains the
LSTM rule and the MLP rule from their presets (or reuses runs already in --work with --reuse), tunes
the learning rate of Adam, RMSprop, SGD with momentum 0.9 and NAG on a grid, separately for 100 and
for 1,000 steps, on problems of the ``val`` split, and reports the mean full-data training loss after
100 and 1,000 steps on new problems of the ``test`` split. The digits rules are also run on the
out-of-family ``mlp-digits-relu`` (two hidden layers of 40 ReLU units; the baselines are tuned on it).

    OMP_NUM_THREADS=1 nice python benchmarks/metaopt_compare.py --work runs/metaopt-bench \
        --json results.json --plot curves.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from fewshot.metaopt import LearnedOptimizer, load_rule, meta_train, optimizee_family
from fewshot.metaopt.cli import read_config
from fewshot.metaopt.evaluate import BASELINES, optimize
from fewshot.metaopt.train import config_from_dict

FAMILIES = {  # name: (optimizee, problems to tune on, problems to test on, out-of-family optimizees)
    "quadratic": ("quadratic", 8, 16, ()),
    "digits": ("mlp-digits", 2, 4, ("mlp-digits-relu",)),
    "glyphs": ("conv-glyphs", 1, 3, ()),
}
GRID = [10 ** (e / 2) for e in range(-8, 2)]  # 1e-4 ... 3.16, half decades
HORIZONS = (100, 1000)
CURVE = sorted({0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000})
FLOOR = 1e-9  # where the plot draws a loss of 0 (cross-entropy underflows in float32 at logit margins ~100)


def mean(values):
    values = list(values)
    return sum(values) / len(values) if all(math.isfinite(v) for v in values) else math.inf


def trained_rule(preset: str, work: Path, reuse: bool, meta_steps: int | None, time_limit: float | None):
    out = work / preset
    if reuse and (out / "checkpoint" / "checkpoint.json").exists():
        return load_rule(out), json.loads((out / "result.json").read_text())
    values = {**read_config(preset), "out": str(out), "quiet": True}
    if meta_steps:
        values["meta_steps"] = meta_steps
    if time_limit:
        values["time_limit"] = time_limit
    result = meta_train(config_from_dict(values, preset), overwrite=True)
    return result.rule, json.loads((out / "result.json").read_text())


def tune(name: str, problems, log) -> dict[int, float]:
    """The grid rate with the lowest mean loss at each horizon on ``problems``."""
    scores = {h: {} for h in HORIZONS}
    for lr in GRID:
        runs = [optimize(o, BASELINES[name](lr), max(HORIZONS), HORIZONS) for o in problems]
        for h in HORIZONS:
            scores[h][lr] = mean(r.losses[h] for r in runs)
    best = {h: min(scores[h], key=scores[h].get) for h in HORIZONS}
    log(f"  {name}: best lr {best} (grid {GRID[0]:g}..{GRID[-1]:g})")
    return best


def evaluate(make, problems) -> dict:
    runs = [optimize(o, make, max(HORIZONS), CURVE) for o in problems]
    return {
        "curve": {s: mean(r.losses[s] for r in runs) for s in CURVE},
        "nonfinite": sum(r.nonfinite for r in runs),
        "diverged": sum(r.diverged for r in runs),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--work", default="runs/metaopt-bench", help="folder of the meta-training runs")
    p.add_argument("--reuse", action="store_true", help="reuse trained runs found in --work")
    p.add_argument("--meta-steps", type=int, help="override the presets' meta_steps")
    p.add_argument("--time-limit", type=float, help="wall seconds per meta-training run")
    p.add_argument("--json", help="write every figure here")
    p.add_argument("--plot", help="write loss curves (PNG) here")
    p.add_argument("--from-json", help="only print the table (and --plot) of results written by --json")
    args = p.parse_args()
    if args.from_json:
        report(load_results(args.from_json), args.plot)
        return 0
    work = Path(args.work)
    began = time.perf_counter()
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    results: dict = {"machine": machine, "grid": GRID, "families": {}}
    for family in args.families:
        optimizee, n_tune, n_test, others = FAMILIES[family]
        log(f"== {family}")
        rules = {}
        for kind in ("lstm", "mlp"):
            t0 = time.perf_counter()
            rules[kind], trained = trained_rule(f"{kind}-{family}", work, args.reuse, args.meta_steps, args.time_limit)
            log(
                f"  {kind}: meta-trained {trained['steps']} steps in {trained['seconds']:.0f} s, "
                f"val {trained['val_loss']:.4g} ({time.perf_counter() - t0:.0f} s here)"
            )
            results["families"].setdefault(family, {})[f"{kind}_training"] = trained
        for target in (optimizee, *others):
            tuning = [optimizee_family(target, "val", 0).next() for _ in range(n_tune)]
            tests = [optimizee_family(target, "test", 0).next() for _ in range(n_test)]
            rows: dict = {}
            for kind, rule in rules.items():
                rows[kind] = evaluate(lambda ps, rule=rule: LearnedOptimizer(ps, rule), tests)
            for name in BASELINES:
                best = tune(name, tuning, log)
                for h in HORIZONS:
                    row = evaluate(BASELINES[name](best[h]), tests)
                    rows[f"{name}@{h}"] = {**row, "lr": best[h]}
            results["families"][family][target] = rows
            log(f"  {target}: done at {time.perf_counter() - began:.0f} s")
            if args.json:  # after every optimizee: a crash later loses nothing measured
                Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    results["seconds"] = round(time.perf_counter() - began, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str) + "\n")
    report(results, args.plot)
    return 0


def report(results: dict, plot_path: str | None) -> None:
    """The table (markdown) and, with ``plot_path``, the curves."""
    machine = results["machine"]
    print(
        f"machine: {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']}, "
        f"{machine['threads']} thread(s); total {results.get('seconds', 0):.0f} s"
    )
    print("| optimizee | optimizer | loss after 100 steps (lr) | loss after 1,000 steps (lr) |")
    print("| --- | --- | --- | --- |")
    for family, entries in results["families"].items():
        for target, rows in entries.items():
            if target.endswith("_training"):
                continue
            for kind in ("lstm", "mlp"):
                r = rows[kind]
                flag = f" ({r['nonfinite']} non-finite updates)" if r["nonfinite"] else ""
                print(
                    f"| {target} | {kind} (learned on {FAMILIES[family][0]}) | {r['curve'][100]:.4g} | "
                    f"{r['curve'][1000]:.4g}{flag} |"
                )
            for name in BASELINES:
                a, b = rows[f"{name}@100"], rows[f"{name}@1000"]
                print(
                    f"| {target} | {name} | {a['curve'][100]:.4g} ({a['lr']:.3g}) | "
                    f"{b['curve'][1000]:.4g} ({b['lr']:.3g}) |"
                )
    if plot_path:
        plot(results, plot_path)


def load_results(path: str) -> dict:
    """Results written by --json, with the curves' steps as integers again."""
    results = json.loads(Path(path).read_text())
    for entries in results["families"].values():
        for target, rows in entries.items():
            if not target.endswith("_training"):
                for row in rows.values():
                    row["curve"] = {int(k): float(v) for k, v in row["curve"].items()}
    return results


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(t, rows) for e in results["families"].values() for t, rows in e.items() if not t.endswith("_training")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (target, rows) in zip(axes[0], panels):
        for label, row in rows.items():
            if label.endswith("@1000"):
                continue
            steps = [s for s in CURVE if s > 0]
            ax.plot(
                steps,
                [max(row["curve"][s], FLOOR) for s in steps],
                label=label.replace("@100", " (lr tuned at 100)"),
                lw=2.2 if label in ("lstm", "mlp") else 1.2,
            )
        ax.set(xscale="log", yscale="log", xlabel="step", title=target, ylim=(FLOOR / 3, None))
        ax.axvline(100, color="grey", lw=0.5, ls=":")
    axes[0][0].set_ylabel("mean training loss (test problems)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
