"""MAML meta-training speed: tasks per second, second order, one fixed batch of tasks.

5-way 1-shot 15-query Omniglot shapes (1x28x28), Conv4 (64 channels, BatchNorm with
batch statistics), 1 inner SGD step, meta-batch 32 by default. One step = meta-loss
over the batch + backward + Adam step. Timed in the same run:

- ``reference``: a naive per-task loop (``functional_call`` + ``autograd.grad`` with
  ``create_graph``; no deep copies) - every ratio is against it;
- ``fewshot loop`` / ``fewshot vmap`` / ``fewshot compiled``: ``MAML`` with
  ``task_batching="loop"``, ``"vmap"``, and ``compile=True`` (auto batching: loop on
  CPU, vmap on CUDA); ``nhwc``: the same with channels-last conv weights, as the
  trainer runs them (``channels_last: true``, the default);
- ``torch.func``: a hand-written per-task loop with ``torch.func.grad`` and ``functional_call``;
- ``higher`` and ``torchopt`` (their documented MAML recipes), when installed;
- with ``--amp``: ``fewshot loop nhwc bf16`` and ``fewshot compiled nhwc bf16``, the trainer's paths
  under bfloat16 autocast (``amp``).

``fewshot compiled`` is what ``fewshot train`` runs by default for second-order MAML of at least
1000 steps (the trainer's ``compile`` setting, ``engine/precision.py``); its first (warm-up) step,
which compiles, is printed apart. Each speed is also given per round against the fastest peer and
as a fraction of the float32 matmul ceiling measured in the same run (``flops_speed.py``).

    python benchmarks/maml_speed.py
    python benchmarks/maml_speed.py --device cuda --steps 10
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from flops_speed import matmul_ceiling, step_flops
from torch import nn

from fewshot.algorithms.gradient import MAML
from fewshot.data import Episode
from fewshot.engine.memory import keep_freed_memory
from fewshot.nn import Conv4


def synthetic_episode(args: argparse.Namespace, device: torch.device) -> Episode:
    g = torch.Generator().manual_seed(0)
    n, k, q, b = args.ways, args.shots, args.queries, args.meta_batch
    return Episode(
        torch.rand(b, n * k, 1, 28, 28, generator=g),  # [B, N*K, 1, 28, 28]
        torch.arange(n).repeat_interleave(k).repeat(b, 1),  # [B, N*K]
        torch.rand(b, n * q, 1, 28, 28, generator=g),  # [B, N*Q, 1, 28, 28]
        torch.arange(n).repeat_interleave(q).repeat(b, 1),  # [B, N*Q]
    ).to(device)


def reference_loss(model: nn.Module, ep: Episode, lr: float, steps: int) -> torch.Tensor:
    """The textbook per-task loop with parameter dicts, batch-statistics BatchNorm."""
    params = dict(model.named_parameters())
    buffers = {k: None for k, _ in model.named_buffers()}  # BN: batch statistics, no updates
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast = params
        for _ in range(steps):
            loss = F.cross_entropy(torch.func.functional_call(model, (fast, buffers), (sx,)), sy)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
            fast = {k: v - lr * g for (k, v), g in zip(fast.items(), grads)}
        losses.append(F.cross_entropy(torch.func.functional_call(model, (fast, buffers), (qx,)), qy))
    return torch.stack(losses).mean()


def func_loss(model: nn.Module, ep: Episode, lr: float, steps: int) -> torch.Tensor:
    """The same loop written with ``torch.func.grad`` (second order: grad of a pure function)."""
    params = dict(model.named_parameters())
    buffers = {k: None for k, _ in model.named_buffers()}

    def support_loss(fast: dict, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(model, (fast, buffers), (sx,)), sy)

    grad = torch.func.grad(support_loss)
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast = params
        for _ in range(steps):
            grads = grad(fast, sx, sy)
            fast = {k: v - lr * grads[k] for k, v in fast.items()}
        losses.append(F.cross_entropy(torch.func.functional_call(model, (fast, buffers), (qx,)), qy))
    return torch.stack(losses).mean()


def higher_loss(model: nn.Module, ep: Episode, lr: float, steps: int) -> torch.Tensor:
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(F.cross_entropy(fmodel(sx), sy))
            losses.append(F.cross_entropy(fmodel(qx), qy))
    return torch.stack(losses).mean()


def torchopt_loss_fn(model: nn.Module, lr: float, steps: int) -> Callable[[nn.Module, Episode], torch.Tensor]:
    import torchopt

    inner_opt = torchopt.MetaSGD(model, lr=lr)

    def loss_fn(model: nn.Module, ep: Episode) -> torch.Tensor:
        net_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
        opt_state = torchopt.extract_state_dict(inner_opt)
        losses = []
        for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
            for _ in range(steps):
                inner_opt.step(F.cross_entropy(model(sx), sy))
            losses.append(F.cross_entropy(model(qx), qy))
            torchopt.recover_state_dict(model, net_state)
            torchopt.recover_state_dict(inner_opt, opt_state)
        return torch.stack(losses).mean()

    return loss_fn


def training_step(loss_fn: Callable[[], torch.Tensor], params, lr: float = 1e-3) -> Callable[[], float]:
    opt = torch.optim.Adam(params, lr=lr)

    def step() -> float:
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def timed(fns: dict[str, Callable[[], float]], steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per step of each function in every round; the functions take turns ``rounds`` times
    (call each once before: warm-up, compilation)."""

    def run(fn: Callable[[], float], n: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / n

    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(run(fn, steps))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1, help="meta-iterations per timed round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--amp", action="store_true", help="also time the trainer's path under bfloat16 autocast")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated subset of: reference, loop, vmap, compiled, nhwc, func, higher, torchopt",
    )
    parser.add_argument(
        "--no-keep-freed-memory",
        action="store_true",
        help="let glibc return freed blocks to the OS (the trainer keeps them: keep_freed_memory)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_keep_freed_memory:  # as the trainer does on CPU (engine/memory.py)
        keep_freed_memory()
    device = torch.device(args.device)
    ep = synthetic_episode(args, device)
    torch.manual_seed(0)
    base = Conv4(hidden=args.hidden, num_classes=args.ways).to(device)
    lr, k = args.inner_lr, args.inner_steps

    wanted = set(args.only.split(",")) | {"reference"} if args.only else None

    def want(name: str) -> bool:
        return wanted is None or name.split()[-1].removeprefix("torch.") in wanted

    fns: dict[str, Callable[[], float]] = {}
    skipped: list[str] = []
    m = copy.deepcopy(base)
    fns["reference"] = training_step(lambda m=m: reference_loss(m, ep, lr, k), m.parameters())
    if want("torch.func"):
        m = copy.deepcopy(base)
        fns["torch.func"] = training_step(lambda m=m: func_loss(m, ep, lr, k), m.parameters())
    nhwc = torch.channels_last
    for name, settings, layout in [
        ("fewshot loop", {"task_batching": "loop"}, None),
        ("fewshot loop nhwc", {"task_batching": "loop"}, nhwc),  # what the trainer runs (channels_last)
        ("fewshot vmap", {"task_batching": "vmap"}, None),
        ("fewshot compiled", {"compile": True}, None),
        ("fewshot compiled nhwc", {"compile": True}, nhwc),
    ]:
        if not want(name) or not want(name.replace(" nhwc", "")) or ("compiled" in name and args.no_compile):
            continue
        model = copy.deepcopy(base) if layout is None else copy.deepcopy(base).to(memory_format=layout)
        alg = MAML(model, inner_lr=lr, inner_steps=k, **settings)
        fns[name] = training_step(lambda alg=alg: alg.meta_loss(ep)[0], alg.parameters())
    for name, settings in [
        ("fewshot loop nhwc bf16", {"task_batching": "loop"}),
        ("fewshot compiled nhwc bf16", {"compile": True}),
    ]:
        if not args.amp or ("compiled" in name and (args.no_compile or not want("compiled"))):
            continue
        alg = MAML(copy.deepcopy(base).to(memory_format=nhwc), inner_lr=lr, inner_steps=k, **settings)

        def autocast_loss(alg=alg) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return alg.meta_loss(ep)[0]

        fns[name] = training_step(autocast_loss, alg.parameters())
    if not want("higher"):
        pass
    elif importlib.util.find_spec("higher"):
        m = copy.deepcopy(base)
        fns["higher"] = training_step(lambda m=m: higher_loss(m, ep, lr, k), m.parameters())
    else:
        skipped.append("higher (not installed)")
    if not want("torchopt"):
        pass
    elif importlib.util.find_spec("torchopt"):
        m = copy.deepcopy(base)
        tl = torchopt_loss_fn(m, lr, k)
        fns["torchopt"] = training_step(lambda m=m, tl=tl: tl(m, ep), m.parameters())
    else:
        skipped.append("torchopt (not installed)")

    first_loss, warmup = {}, {}
    for name, fn in fns.items():  # warm-up step: same start, same loss; the compiled ones compile here
        start = time.perf_counter()
        first_loss[name] = fn()
        warmup[name] = time.perf_counter() - start
    start = time.perf_counter()
    rounds = timed(fns, args.steps, args.rounds, device)
    total = time.perf_counter() - start
    seconds = {name: statistics.median(v) for name, v in rounds.items()}
    probe = copy.deepcopy(base)
    flops = step_flops(lambda: reference_loss(probe, ep, lr, k).backward())
    ceiling = matmul_ceiling(torch.float32, device=device.type)

    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(
        f"MAML, {args.ways}-way {args.shots}-shot {args.queries}-query 1x28x28, Conv4-{args.hidden}, "
        f"{k} inner step(s), second order, meta-batch {args.meta_batch}, device {device}, "
        f"threads {threads}, torch {torch.__version__}"
    )
    print(
        f"{'method':<22}{'tasks/s':>9}{'ms/step':>10}{'vs reference':>14}{'of fp32 ceiling':>17}"
        f"{'warm-up s':>11}{'first loss':>12}"
    )
    ref = seconds["reference"]
    for name, sec in seconds.items():
        print(
            f"{name:<22}{args.meta_batch / sec:>9.1f}{1e3 * sec:>10.1f}{ref / sec:>13.2f}x"
            f"{flops / sec / ceiling:>17.2f}{warmup[name]:>11.1f}{first_loss[name]:>12.4f}"
        )
    for name in skipped:
        print(f"skipped: {name}")
    print(f"(median of {args.rounds} rounds x {args.steps} steps, methods interleaved; timing took {total:.0f}s)")
    print(
        f"float32 matmul ceiling {ceiling / 1e9:.1f} GFLOP/s (same run); a step is {flops / 1e9:.1f} GFLOP "
        "(torch flop counter)"
    )
    peers = [p for p in ("higher", "torchopt", "torch.func", "reference") if p in rounds]
    for name in [n for n in rounds if n.startswith("fewshot")]:
        per_round = [min(rounds[p][i] for p in peers) / rounds[name][i] for i in range(args.rounds)]
        print(f"{name} vs fastest of {', '.join(peers)} per round: " + " ".join(f"{r:.2f}x" for r in per_round))


if __name__ == "__main__":
    main()
