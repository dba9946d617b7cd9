"""Conv4 downsampling, maxpool vs stride 2: first-order MAML meta-steps per second.

Omniglot shapes (1x28x28), Conv4 of 64 channels with a 5-way head, batch-statistics
BatchNorm; one step = FOMAML meta-loss over a batch of tasks (1 inner SGD step) +
backward + Adam step, as the ``omniglot-fomaml-5w1s`` preset trains. Each network is
timed with the task loop and with vmap, the four variants taking turns; every ratio is
against ``maxpool loop`` (the presets' network and CPU default before ``omniglot-strided``).

    python benchmarks/conv4_speed.py
    python benchmarks/conv4_speed.py --shots 5 --meta-batch 32 --device cuda
"""

from __future__ import annotations

import argparse

import torch
from maml_speed import (  # the sibling benchmark: same episodes, same interleaved timing
    synthetic_episode,
    timed,
    training_step,
)

from fewshot.algorithms.gradient import FOMAML
from fewshot.nn import Conv4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=1, help="per class (MAML's Omniglot tasks: as many as shots)")
    ap.add_argument("--meta-batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="meta-steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    ep = synthetic_episode(args, device)

    steps = {}
    for downsample in ("maxpool", "stride"):
        for batching in ("loop", "vmap"):
            torch.manual_seed(0)
            model = Conv4(num_classes=args.ways, downsample=downsample).to(device)
            alg = FOMAML(model, inner_lr=0.4, inner_steps=1, task_batching=batching)
            step = training_step(lambda alg=alg: alg.meta_loss(ep)[0], alg.parameters())
            step()  # warm-up
            steps[f"{downsample} {batching}"] = step

    seconds = timed(steps, args.steps, args.rounds, device)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(
        f"FOMAML meta-step, {args.ways}-way {args.shots}-shot {args.queries}-query, meta-batch {args.meta_batch}, "
        f"{device}, threads {threads}, median of {args.rounds} rounds x {args.steps} steps"
    )
    base = seconds["maxpool loop"]
    for name, s in seconds.items():
        print(f"{name:>14}: {1000 * s:8.1f} ms/step  {args.meta_batch / s:8.1f} tasks/s  x{base / s:.2f}")


if __name__ == "__main__":
    main()
