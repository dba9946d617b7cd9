"""First-order MAML meta-steps per second on Omniglot shapes: the Conv4's downsampling
(maxpool vs stride 2), the task axis (loop vs vmap), the weights' layout and torch.compile.

Omniglot shapes (1x28x28), Conv4 of 64 channels with an N-way head, batch-statistics
BatchNorm; one step = FOMAML meta-loss over a batch of tasks (``--inner-steps`` SGD
steps) + backward + Adam step, as the ``omniglot-fomaml-*`` presets train. The variants
take turns; every ratio is against ``maxpool loop`` (the presets' network and CPU default
before ``omniglot-strided``). ``nhwc``: channels-last conv weights (``Trainer``'s
``channels_last``); ``compiled``: ``compile=True`` (timed after its compilation).

    python benchmarks/conv4_speed.py
    python benchmarks/conv4_speed.py --shots 5 --queries 5             # omniglot-fomaml-5w5s
    python benchmarks/conv4_speed.py --ways 20 --meta-batch 16 --inner-steps 5 --no-compile
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
    ap.add_argument("--inner-steps", type=int, default=1)
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled variants (minutes to compile)")
    ap.add_argument("--steps", type=int, default=10, help="meta-steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    device = torch.device(args.device)
    ep = synthetic_episode(args, device)

    variants = [  # name, downsample, task batching, channels-last, compile
        ("maxpool loop", "maxpool", "loop", False, False),
        ("maxpool vmap", "maxpool", "vmap", False, False),
        ("stride loop", "stride", "loop", False, False),
        ("stride vmap", "stride", "vmap", False, False),
        ("stride loop nhwc", "stride", "loop", True, False),
        ("stride compiled", "stride", "loop", False, True),
        ("stride compiled nhwc", "stride", "loop", True, True),
    ]
    steps = {}
    for name, downsample, batching, nhwc, compiled in variants:
        if compiled and args.no_compile:
            continue
        torch.manual_seed(0)
        model = Conv4(num_classes=args.ways, downsample=downsample).to(device)
        if nhwc:
            model = model.to(memory_format=torch.channels_last)  # changes 4-d tensors only
        alg = FOMAML(model, inner_lr=0.4, inner_steps=args.inner_steps, task_batching=batching, compile=compiled)
        step = training_step(lambda alg=alg: alg.meta_loss(ep)[0], alg.parameters())
        step()  # warm-up (and compilation)
        steps[name] = step

    seconds = timed(steps, args.steps, args.rounds, device)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(
        f"FOMAML meta-step, {args.ways}-way {args.shots}-shot {args.queries}-query, {args.inner_steps} inner step(s), "
        f"meta-batch {args.meta_batch}, "
        f"{device}, threads {threads}, median of {args.rounds} rounds x {args.steps} steps"
    )
    base = seconds["maxpool loop"]
    for name, s in seconds.items():
        print(f"{name:>20}: {1000 * s:8.1f} ms/step  {args.meta_batch / s:8.1f} tasks/s  x{base / s:.2f}")


if __name__ == "__main__":
    main()
