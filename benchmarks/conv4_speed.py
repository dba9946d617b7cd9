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
import statistics
import time

import torch

from fewshot.algorithms.gradient import FOMAML
from fewshot.data import Episode
from fewshot.nn import Conv4


def episode(ways: int, shots: int, queries: int, meta_batch: int, device: torch.device) -> Episode:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(ways).repeat(meta_batch, 1)  # [B, N]
    return Episode(
        torch.rand(meta_batch, ways * shots, 1, 28, 28, generator=g),  # [B, N*K, 1, 28, 28]
        labels.repeat_interleave(shots, dim=1),  # [B, N*K]
        torch.rand(meta_batch, ways * queries, 1, 28, 28, generator=g),  # [B, N*Q, 1, 28, 28]
        labels.repeat_interleave(queries, dim=1),  # [B, N*Q]
    ).to(device)


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
    ep = episode(args.ways, args.shots, args.queries, args.meta_batch, device)

    steps = {}
    for downsample in ("maxpool", "stride"):
        for batching in ("loop", "vmap"):
            torch.manual_seed(0)
            model = Conv4(num_classes=args.ways, downsample=downsample).to(device)
            alg = FOMAML(model, inner_lr=0.4, inner_steps=1, task_batching=batching)
            opt = torch.optim.Adam(alg.parameters(), lr=1e-3)

            def step(alg=alg, opt=opt) -> None:
                opt.zero_grad()
                alg.meta_loss(ep)[0].backward()
                opt.step()

            step()  # warm-up
            steps[f"{downsample} {batching}"] = step

    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            samples[name].append((time.perf_counter() - start) / args.steps)

    seconds = {name: statistics.median(v) for name, v in samples.items()}
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
