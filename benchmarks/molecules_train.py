"""Meta-train a molecule learner on FS-Mol train (or an assay table's training assays) on the CPU.

Validation: FS-Mol's valid assays, stratified supports of 16 molecules, 2 draws, delta-AUPRC
on (at most ``--valid-queries``) of the rest. The best weights go to ``--out`` as
a checkpoint folder (load with ``fewshot.molecules.methods.load_learner``).

    OMP_NUM_THREADS=1 nice python benchmarks/molecules_train.py --encoder mlp --steps 20000 \\
        --time-limit 3600 --out runs/mol/protonet-ecfp
    OMP_NUM_THREADS=1 nice python benchmarks/molecules_train.py --encoder gnn --featurizer ecfp+graph ...
    python benchmarks/molecules_train.py --data tox21 --encoder mlp --steps 2000 --out runs/mol/tox21
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch

from fewshot.molecules.assays import load_assays
from fewshot.molecules.evaluate import evaluate_protocol
from fewshot.molecules.fsmol import load_fs_mol
from fewshot.molecules.methods import build_learner, load_learner, save_learner
from fewshot.molecules.protocols import fsmol_episodes, moleculenet_episodes
from fewshot.molecules.train import meta_train

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", REPO.parent / "shared" / "data")) / "molecules"


def families(args):
    if args.data == "fs-mol":
        train = load_fs_mol(DATA / "fs-mol", "train", featurizer=args.featurizer, tasks=args.train_tasks)
        valid = load_fs_mol(DATA / "fs-mol", "valid", featurizer=args.featurizer)
        return train, lambda m: fsmol_episodes(valid, sizes=(16,), draws=2, max_queries=args.valid_queries)
    train = load_assays(DATA, "train", dataset=args.data, featurizer=args.featurizer)
    # MoleculeNet splits have no validation assays: validate on held-out draws of the training assays
    return train, lambda m: moleculenet_episodes(train, shots=(args.shots,), draws=2, seed=1000, queries=64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fs-mol", choices=("fs-mol", "tox21", "sider", "muv"))
    parser.add_argument("--algorithm", default="protonet", choices=("protonet", "mahalanobis", "adkf"))
    parser.add_argument("--encoder", default="mlp", choices=("mlp", "gnn"))
    parser.add_argument("--featurizer", default=None, help="default: ecfp for mlp, ecfp+graph for gnn")
    parser.add_argument("--hidden", default="1024,512", help="MLP widths")
    parser.add_argument("--dropout", type=float, default=0.0, help="MLP dropout after each hidden layer")
    parser.add_argument("--input-dropout", type=float, default=0.0, help="MLP dropout on the input fingerprint")
    parser.add_argument("--gnn-hidden", type=int, default=128)
    parser.add_argument("--gnn-layers", type=int, default=4)
    parser.add_argument("--graph-dim", type=int, default=128, help="width of the GNN's readout")
    parser.add_argument("--warm-start", default=None, help="a saved fingerprint-MLP ProtoNet: the GNN's ECFP branch")
    parser.add_argument("--freeze-fingerprint", action="store_true", help="keep the warm-started ECFP branch fixed")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds of training")
    parser.add_argument("--shots", type=int, default=8)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--valid-every", type=int, default=1000)
    parser.add_argument("--valid-queries", type=int, default=256)
    parser.add_argument("--train-tasks", type=int, default=None, help="first N training assays only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    args.featurizer = args.featurizer or ("ecfp" if args.encoder == "mlp" else "ecfp+graph")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    train, episodes = families(args)
    load_s = time.perf_counter() - started
    if args.encoder == "mlp":
        encoder = {
            "kind": "mlp",
            "in_features": train.tasks[0].gather(torch.arange(1)).shape[1],
            "hidden": [int(h) for h in args.hidden.split(",")],
        }
        if args.dropout or args.input_dropout:
            encoder.update(dropout=args.dropout, input_dropout=args.input_dropout)
    else:
        fp_dim = 2048 if args.featurizer.startswith("ecfp") else 0
        encoder = {
            "kind": "gnn",
            "fp_dim": fp_dim,
            "hidden": args.gnn_hidden,
            "layers": args.gnn_layers,
            "graph_dim": args.graph_dim,
        }
        if args.warm_start:
            mlp_learner, mlp_spec = load_learner(args.warm_start)
            widths = list(mlp_spec["encoder"]["hidden"])
            encoder.update(fp_hidden=widths, out_dim=widths[-1])
    spec = {"algorithm": args.algorithm, "encoder": encoder, "featurizer": args.featurizer, "data": args.data}
    learner = build_learner(spec)
    if args.encoder == "gnn" and args.warm_start:
        learner.encoder.warm_start(mlp_learner.encoder)
        learner.encoder.fingerprint.requires_grad_(not args.freeze_fingerprint)

    def validate(model) -> float:
        results = evaluate_protocol(model, episodes(model))
        return next(iter(results.values())).summary("delta_auprc")["mean"]

    t = time.perf_counter()
    history = meta_train(
        learner,
        train,
        steps=args.steps,
        shots=args.shots,
        queries=args.queries,
        batch_size=args.batch,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        validate=validate,
        validate_every=args.valid_every,
        time_limit=args.time_limit,
    )
    train_s = time.perf_counter() - t
    best = max((h["valid"] for h in history if "valid" in h), default=float("nan"))
    steps = max((h["step"] for h in history), default=0)
    metrics = {"valid_delta_auprc": best, "steps": steps, "train_seconds": train_s, "load_seconds": load_s}
    save_learner(learner, spec, args.out, metrics)
    (Path(args.out) / "history.json").write_text(json.dumps({"args": vars(args), "history": history}, indent=1))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
