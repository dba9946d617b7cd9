"""DARTS searching ProtoNet's backbone on episodes, then the found genotype retrained against Conv4.

    python benchmarks/nas_fewshot.py                       # glyphs, CPU, minutes
    python benchmarks/nas_fewshot.py --dataset omniglot --data-root ../shared/data/omniglot \\
        --epochs 30 --steps-per-epoch 200 --retrain-steps 20000 --device cuda   # longer budget, on a GPU

Search: 5-way 1-shot episodes; network weights on training-class episodes, architecture weights on
validation-class episodes (first order unless --order 2). Retrain: ProtoNet (Adam) with the found
genotype's DartsNetwork and with Conv4 for the same number of episodes; test: mean accuracy and 95% CI
over fixed test episodes at 5-way and 20-way 1-shot. Prints parameters and wall times of each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from fewshot.nas.darts import DartsNetwork
from fewshot.nas.darts.genotype import to_string
from fewshot.nas.learner_search import EpisodeSettings, darts_protonet, episode_accuracy, train_protonet
from fewshot.nn import Conv4


def _count(module) -> int:
    return sum(q.numel() for q in module.parameters())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="glyphs")
    p.add_argument("--data-root")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--test-split", default="test")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--order", type=int, default=1)
    p.add_argument(
        "--alpha-lr",
        type=float,
        default=0.006,
        help="Adam rate of the architecture weights (DARTS: 3e-4 over 50 epochs; larger here for a budget of minutes)",
    )
    p.add_argument("--aux-skip", type=float, default=0.0, help="DARTS- auxiliary skip weight (0: plain DARTS)")
    p.add_argument("--search-channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument(
        "--channels",
        type=int,
        default=0,
        help="initial width of the retrained DARTS network (0: the narrowest with >= 90%% of Conv4's params)",
    )
    p.add_argument("--retrain-steps", type=int, default=1500)
    p.add_argument("--test-episodes", type=int, default=600)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, device {args.device}"
    )
    print(f"# command: python {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")

    common = {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "train_split": args.train_split,
        "val_split": args.val_split,
        "device": args.device,
    }
    search_eps = EpisodeSettings(ways=5, shots=1, queries=5, **common)
    t0 = time.perf_counter()
    search_eps.load(args.train_split), search_eps.load(args.val_split)
    print(f"load {args.dataset}: {time.perf_counter() - t0:.1f} s")

    def show(record):
        top = max(record["normal"], key=record["normal"].get)
        print(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.3f}, skips {record['skips']}, "
            f"top normal op {top} {record['normal'][top]:.3f}",
            flush=True,
        )

    result = darts_protonet(
        search_eps,
        channels=args.search_channels,
        layers=args.layers,
        nodes=args.nodes,
        stem_stride=2,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        seed=args.seed,
        order=args.order,
        aux_skip=args.aux_skip,
        alpha_lr=args.alpha_lr,
        progress=show,
    )
    genotype = to_string(result.genotype)
    print(f"search: {result.seconds / 60:.1f} min, genotype {genotype}")

    out = {"genotype": genotype, "search_s": result.seconds, "epochs": result.epochs, "rows": []}

    def darts(width):
        return DartsNetwork(result.genotype, in_channels=1, channels=width, layers=args.layers, stem_stride=2)

    conv4_params = sum(q.numel() for q in Conv4(in_channels=1, hidden=64, image_size=28).parameters())
    width = args.channels or next(c for c in range(4, 256) if _count(darts(c)) >= 0.9 * conv4_params)
    encoders = {"darts": lambda: darts(width), "conv4": lambda: Conv4(in_channels=1, hidden=64, image_size=28)}
    for name, build in encoders.items():
        torch.manual_seed(args.seed)
        encoder = build()
        params = _count(encoder)
        t = time.perf_counter()
        model = train_protonet(
            encoder, EpisodeSettings(ways=5, shots=1, queries=5, **common), args.retrain_steps, 1e-3, args.seed
        )
        train_s = time.perf_counter() - t
        for ways in (5, 20):
            test = EpisodeSettings(ways=ways, shots=1, queries=5, **common)
            acc, ci = episode_accuracy(model, test, args.test_split, args.test_episodes, seed=2024)
            row = {"backbone": name, "params": params, "ways": ways, "accuracy": acc, "ci95": ci, "train_s": train_s}
            out["rows"].append(row)
            print(
                f"{name:6s} {params:>8d} params  {ways:2d}-way 1-shot  {acc:.2f} +- {ci:.2f}  "
                f"(retrain {args.retrain_steps} episodes: {train_s / 60:.1f} min)",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
