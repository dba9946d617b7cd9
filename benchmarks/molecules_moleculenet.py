"""Tox21 / SIDER (/ MUV) few-shot ROC-AUC at 1 and 10 shots, the papers' MoleculeNet protocol.

Training assays: the first 9 (Tox21), 21 (SIDER), 12 (MUV); test assays the last 3, 6, 5.
Per test assay and K, ``--draws`` supports of K actives + K inactives, the rest of the
assay as queries; ROC-AUC per assay, mean over assays, 95% interval over draws.
Methods: random forest and kNN on the support alone (ECFP), and ProtoNet and the deep-kernel
GP (MLP over ECFP) meta-trained here on the training assays for ``--steps`` steps.

    OMP_NUM_THREADS=1 nice python benchmarks/molecules_moleculenet.py [--data tox21,sider] \\
        [--shots 1,10] [--draws 10] [--steps 2000] [--methods rf,knn,protonet,adkf]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from fewshot.molecules.assays import load_assays
from fewshot.molecules.baselines import KNN, RandomForest
from fewshot.molecules.evaluate import evaluate_protocol
from fewshot.molecules.methods import build_learner, on_embeddings
from fewshot.molecules.protocols import moleculenet_episodes
from fewshot.molecules.train import meta_train

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", REPO.parent / "shared" / "data")) / "molecules"
META_MGNN = {"tox21": "1-shot 76.6-77.1, 5-shot 78.0", "sider": "1-shot 72.9-73.8, 5-shot 74.7"}


def trained(algorithm: str, train, args) -> torch.nn.Module:
    torch.manual_seed(args.seed)
    spec = {"algorithm": algorithm, "encoder": {"kind": "mlp", "in_features": 2048, "hidden": [1024, 512]}}
    learner = build_learner(spec)
    shots = max(int(s) for s in args.shots.split(","))
    meta_train(
        learner,
        train,
        steps=args.steps,
        shots=shots,
        queries=16,
        batch_size=args.batch,
        lr=args.lr,
        seed=args.seed,
        log_every=max(args.steps // 4, 1),
    )
    return learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tox21,sider")
    parser.add_argument("--shots", default="1,10")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--methods", default="rf,knn,protonet,adkf")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    shots = [int(s) for s in args.shots.split(",")]
    for data in args.data.split(","):
        train = load_assays(DATA, "train", dataset=data)
        test = load_assays(DATA, "test", dataset=data)
        print(
            f"\n{data}: {train.num_tasks} training assays, test assays {', '.join(test.task_names)}; "
            f"{args.draws} draws; Meta-MGNN published {META_MGNN.get(data, '-')}"
        )
        print(f"{'method':<10}{'K':>4}{'ROC-AUC':>9}{'+-95%':>8}{'dAUPRC':>8}{'seconds':>9}")
        for name in args.methods.split(","):
            started = time.perf_counter()
            if name == "rf":
                learner = RandomForest()
            elif name == "knn":
                learner = KNN()
            else:
                learner = trained(name, train, args)
            train_s = time.perf_counter() - started
            family = test
            if hasattr(learner, "encoder"):  # encode each molecule once, not once per draw (same scores)
                learner, family = on_embeddings(learner, test)
            results = evaluate_protocol(learner, moleculenet_episodes(family, shots=shots, draws=args.draws))
            seconds = time.perf_counter() - started
            for k, r in results.items():
                auc, d = r.summary("roc_auc"), r.summary("delta_auprc")
                print(
                    f"{name:<10}{k:>4}{100 * auc['mean']:>9.2f}{100 * auc['ci95']:>8.2f}{d['mean']:>8.3f}"
                    f"{seconds:>9.0f}" + (f"  (train {train_s:.0f} s, {args.steps} steps)" if train_s > 1 else "")
                )


if __name__ == "__main__":
    main()
