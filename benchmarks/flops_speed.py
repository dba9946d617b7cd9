"""The machine's matmul ceiling: float32 and bfloat16 GFLOP/s of a square matmul, and a step's FLOPs.

The training benchmarks (protonet_speed.py, maml_speed.py) import ``matmul_ceiling`` and
``step_flops`` to report each training speed as a fraction of the float32 ceiling measured in
the same run; alone, this script prints the ceilings.

    python benchmarks/flops_speed.py
    python benchmarks/flops_speed.py --size 2048 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_ceiling(dtype: torch.dtype, size: int = 2048, rounds: int = 5, device: str = "cpu") -> float:
    """Median FLOP/s of ``size``-square matmuls in ``dtype`` (2 * size**3 FLOPs each)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up: oneDNN / BLAS picks its kernel
    calls = max(1, int(2e11 / (2 * size**3)))  # about 0.2 TFLOP per round
    samples = []
    for _ in range(rounds):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        samples.append(calls * 2 * size**3 / (time.perf_counter() - start))
    return statistics.median(samples)


def step_flops(step: Callable[[], object]) -> float:
    """FLOPs of one call of ``step`` (forward and backward), as torch's flop counter counts them
    (matmuls and convolutions; elementwise ops count zero)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.size}x{args.size} matmul")
    for dtype in (torch.float32, torch.bfloat16):
        print(f"{str(dtype):<16} {matmul_ceiling(dtype, args.size, args.rounds) / 1e9:8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
