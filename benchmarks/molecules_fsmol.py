"""FS-Mol test: delta-AUPRC at support 16/32/64/128 (FS-Mol's protocol), against the release's baselines.

Methods: ``rf`` and ``knn`` (scikit-learn per task on ECFP), and learners saved by
``benchmarks/molecules_train.py`` given as ``NAME=DIR``. For each support size the table
gives the mean over tasks of the per-task mean over draws, the 95% interval over tasks,
the release's result of the same kind of method on the same tasks, and on how many tasks
the method beats the release's result of its kind and the release's ProtoNet (GNN + ECFP).

    OMP_NUM_THREADS=1 nice python benchmarks/molecules_fsmol.py --methods rf,knn \\
        [--sizes 16,32,64,128] [--draws 10] [--tasks N] [--json out.json] [--plot scatter.png]
    OMP_NUM_THREADS=1 python benchmarks/molecules_fsmol.py --methods protonet-ecfp=runs/mol/protonet-ecfp
    OMP_NUM_THREADS=1 python benchmarks/molecules_fsmol.py --methods protonet-ensemble=runs/mol/a+runs/mol/b

``NAME=DIR+DIR+...`` evaluates the ensemble of those learners (``fewshot.molecules.ensemble``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import torch

from fewshot.molecules.baselines import KNN, RandomForest
from fewshot.molecules.ensemble import Ensemble
from fewshot.molecules.evaluate import evaluate_protocol
from fewshot.molecules.fsmol import load_fs_mol
from fewshot.molecules.methods import load_learner, on_embeddings
from fewshot.molecules.protocols import fsmol_episodes
from fewshot.molecules.tasks import AssayTasks

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", REPO.parent / "shared" / "data")) / "molecules" / "fs-mol"
RELEASE = {
    "ProtoNet": "ProtoNet-gnn+ecfp+fc-Support64_summary.csv",
    "GNN-MAML": "MAML-Support16_summary.csv",
    "GNN-MT": "GNN-Multitask_summary.csv",
    "RF": "random_forest_summary.csv",
    "kNN": "kNN_summary.csv",
}
KIND = {"rf": "RF", "knn": "kNN"}  # our method -> the release's method of the same kind


def release_results(name: str) -> dict[str, dict[int, float]]:
    """Per task and support size, the release's delta-AUPRC (AUPRC mean over draws - fraction active)."""
    out: dict[str, dict[int, float]] = {}
    with open(DATA / "baselines" / RELEASE[name]) as f:
        for row in csv.DictReader(f):
            base = float(row["fraction_positive_test"])
            out[row["TASK_ID"]] = {
                s: float(row[f"{s}_train"].split("+")[0]) - base for s in (16, 32, 64, 128) if row.get(f"{s}_train")
            }
    return out


def method(spec: str):
    """(name, scorer or learner, featurizer) from ``rf``, ``knn``, ``NAME=DIR`` or ``NAME=DIR+DIR+...``."""
    if spec == "rf":
        return "rf", RandomForest(), "ecfp"
    if spec == "knn":
        return "knn", KNN(), "ecfp"
    name, _, directories = spec.partition("=")
    loaded = [load_learner(d) for d in directories.split("+")]
    featurizers = {json.dumps(s["featurizer"], sort_keys=True) for _, s in loaded}
    if len(featurizers) > 1:
        raise SystemExit(f"{name}: the ensemble's members use different featurizers {sorted(featurizers)}")
    learner = loaded[0][0] if len(loaded) == 1 else Ensemble([m for m, _ in loaded]).eval()
    torch.set_grad_enabled(True)  # the deep-kernel GP fits its hyperparameters with gradients
    return name, learner, loaded[0][1]["featurizer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="rf,knn")
    parser.add_argument("--sizes", default="16,32,64,128")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=None, help="first N test tasks only")
    parser.add_argument("--json", default=None, help="write per-task results here")
    parser.add_argument("--plot", default=None, help="scatter PNG: ours vs the release's ProtoNet per task")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sizes = [int(s) for s in args.sizes.split(",")]
    release = {name: release_results(name) for name in RELEASE}
    families: dict[str, AssayTasks] = {}
    report: dict = {"args": vars(args), "methods": {}}

    print("release baselines, mean delta-AUPRC over their 157 test tasks:")
    for name, per_task in release.items():
        means = [sum(v[s] for v in per_task.values()) / len(per_task) for s in sizes]
        print(f"  {name:<9}" + " ".join(f"{m:.3f}" for m in means))

    for spec in args.methods.split(","):
        name, learner, featurizer = method(spec)
        if featurizer not in families:
            family = load_fs_mol(DATA, "test", featurizer=featurizer)
            families[featurizer] = AssayTasks(family.tasks[: args.tasks], "fs-mol:test") if args.tasks else family
        family = families[featurizer]
        started = time.perf_counter()
        if isinstance(learner, torch.nn.Module):  # encode each molecule once, not once per draw (same scores)
            learner, family = on_embeddings(learner, family)
        results = evaluate_protocol(learner, fsmol_episodes(family, sizes=sizes, draws=args.draws))
        seconds = time.perf_counter() - started
        print(f"\n{name}: {family.num_tasks} test tasks, {args.draws} draws per size, {seconds:.0f} s")
        print(
            f"{'support':>8} {'tasks':>6} {'dAUPRC':>8} {'+-95%':>7} {'ROC-AUC':>8} {'release':>8} {'> ProtoNet':>11}"
        )
        report["methods"][name] = {"seconds": seconds, "sizes": {}}
        for size, r in results.items():
            d = r.summary("delta_auprc")
            auc = r.summary("roc_auc")["mean"]
            tasks = list(r.per_task)
            kind = KIND.get(name) or ("ProtoNet" if name.startswith("protonet") else None)
            same = sum(release[kind][t][size] for t in tasks) / len(tasks) if kind else float("nan")
            proto = release["ProtoNet"]
            better = sum(r.per_task[t]["delta_auprc"] > proto[t][size] for t in tasks if size in proto.get(t, {}))
            won = sum(r.per_task[t]["delta_auprc"] > release[kind][t][size] for t in tasks) if kind else 0
            print(
                f"{size:>8} {len(tasks):>6} {d['mean']:>8.3f} {d['ci95_tasks']:>7.3f} {auc:>8.3f} "
                f"{same:>8.3f} {won:>5}/{len(tasks):<5} {better:>5}/{len(tasks):<5}"
            )
            report["methods"][name]["sizes"][size] = {**r.to_dict(), "per_task": r.per_task, "beats_protonet": better}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, release["ProtoNet"], sizes[0], args.plot)


def plot(report: dict, protonet: dict, size: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, m in report["methods"].items():
        per_task = m["sizes"][size]["per_task"]
        xs = [protonet[t][size] for t in per_task]
        ys = [v["delta_auprc"] for v in per_task.values()]
        ax.scatter(xs, ys, s=8, label=name)
    ax.plot([-0.2, 0.6], [-0.2, 0.6], "k--", lw=0.8)
    ax.set_xlabel(f"release ProtoNet (GNN+ECFP) delta-AUPRC, support {size}")
    ax.set_ylabel("ours")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
