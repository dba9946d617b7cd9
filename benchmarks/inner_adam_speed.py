"""Inner-loop Adam step time on a Conv4's parameters (Reptile's inner optimizer).

Timed in the same run, on the same parameters and gradients (one fixed set):

- ``per-tensor``: the textbook functional Adam, a dict comprehension per moment and
  one for the update (what ``fewshot.functional.adam`` did before its moments went flat)
  - every ratio is against it;
- ``fewshot``: ``fewshot.functional.adam``, moments flat over all parameters;
- ``torch.optim foreach``: ``torch.optim.Adam(foreach=True)``, in place on leaf
  tensors (not differentiable through its steps, so not an inner-loop optimizer;
  the floor for an eager Adam).

    python benchmarks/inner_adam_speed.py
    python benchmarks/inner_adam_speed.py --downsample maxpool --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fewshot.nn import Conv4
from fewshot.optim import adam


def per_tensor_adam(lr: float, b1: float = 0.0, b2: float = 0.999, eps: float = 1e-8):
    """The peer: ``(t, m, v)`` with one moment tensor per parameter."""

    def init(params):
        return (
            0,
            {k: torch.zeros_like(p) for k, p in params.items()},
            {k: torch.zeros_like(p) for k, p in params.items()},
        )

    def step(params, grads, state):
        t, m, v = state
        t = t + 1
        m = {k: b1 * m[k] + (1 - b1) * g for k, g in grads.items()}
        v = {k: b2 * v[k] + (1 - b2) * g * g for k, g in grads.items()}
        c1, c2 = 1 - b1**t, 1 - b2**t
        return {k: p - lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps) for k, p in params.items()}, (t, m, v)

    return init, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--downsample", default="stride", choices=["stride", "maxpool"])
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="Adam steps per timed round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    model = Conv4(num_classes=args.ways, downsample=args.downsample)
    params = {k: p.detach() for k, p in model.named_parameters()}
    grads = {k: torch.randn_like(p) for k, p in params.items()}
    leaves = [p.clone() for p in params.values()]
    for leaf, g in zip(leaves, grads.values()):
        leaf.grad = g
    optim = torch.optim.Adam(leaves, lr=1e-3, betas=(0.0, 0.999), foreach=True)

    def functional(init, step):
        def run():
            state = init(params)
            for _ in range(args.steps):
                _, state = step(params, grads, state)

        return run

    def in_place():
        for _ in range(args.steps):
            optim.step()

    fewshot = adam(1e-3)
    variants = {
        "per-tensor": functional(*per_tensor_adam(1e-3)),
        "fewshot": functional(fewshot.init, fewshot.step),
        "torch.optim foreach": in_place,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for run in variants.values():  # warm-up
            run()
        for _ in range(args.rounds):  # interleaved, so that a noisy moment hits every variant
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) / args.steps)
    size = sum(p.numel() for p in params.values())
    print(
        f"Adam step on a {args.downsample} Conv4 ({len(params)} tensors, {size:,} values), "
        f"{torch.get_num_threads()} thread(s), median of {args.rounds} rounds x {args.steps} steps"
    )
    base = statistics.median(times["per-tensor"])
    for name, ts in times.items():
        ms = statistics.median(ts) * 1e3
        print(f"{name:>20}: {ms:7.3f} ms/step  x{base * 1e3 / ms:.2f}")


if __name__ == "__main__":
    main()
