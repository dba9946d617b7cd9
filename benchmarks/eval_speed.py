"""Evaluation throughput: the field's protocol (600 fixed 5-way 1-shot 15-query episodes) in
episodes per second, fewshot's ``evaluate`` against a plain loop, in the same run.

- ProtoNet (Conv4 with channels-last weights, as the trainer keeps them; eval mode): ``evaluate``
  on CPU (its default there: ``adapt`` task by task, under ``no_grad``) and ``evaluate`` with several
  tasks per episode (its default on accelerators: ``predict_episode``, several tasks per encoder
  call under ``torch.inference_mode``), against the textbook loop (per task, support and query
  encoded apart, autograd on, as a training script's validation would do).
- MAML (Conv4 with a linear head, batch-statistics BatchNorm, ``--adapt-steps`` SGD steps):
  ``evaluate`` (``adapt`` per task: a first-order inner loop, the query forward without autograd)
  against a plain loop (``functional_call`` + ``autograd.grad`` per step, the query forward with
  autograd on).

The methods take turns over chunks of the episode set (``--rounds``), so a busy machine slows
them alike; the per-round ratios are printed with the medians. The learners are untrained:
speed, not accuracy, is measured (each pair's accuracies are printed and agree).

    python benchmarks/eval_speed.py --data-root ../shared/data/omniglot
    python benchmarks/eval_speed.py --dataset glyphs --episodes 200 --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.algorithms.gradient import MAML
from fewshot.algorithms.metric import ProtoNet
from fewshot.data import Episode, EpisodeSampler, get_dataset
from fewshot.engine import evaluate_episodes
from fewshot.engine.evaluate import batched_tasks
from fewshot.engine.memory import keep_freed_memory
from fewshot.nn import Conv4


def plain_protonet(encoder: nn.Module, episode: Episode) -> list[float]:
    """Per task: encode support and query apart, class means, squared distances (autograd on)."""
    scores = []
    for sx, sy, qx, qy in zip(episode.support_x, episode.support_y, episode.query_x, episode.query_y):
        zs, zq = encoder(sx).flatten(1), encoder(qx).flatten(1)
        prototypes = torch.stack([zs[sy == c].mean(0) for c in range(int(sy.max()) + 1)])
        logits = -(torch.cdist(zq, prototypes) ** 2)
        scores.append(float((logits.argmax(-1) == qy).float().mean()))
    return scores


def plain_maml(model: nn.Module, episode: Episode, lr: float, steps: int) -> list[float]:
    """Per task: ``steps`` SGD steps on the support loss with ``autograd.grad``, then the query
    forward at the adapted parameters (autograd on, batch-statistics BatchNorm)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: None for k, _ in model.named_buffers()}
    scores = []
    for sx, sy, qx, qy in zip(episode.support_x, episode.support_y, episode.query_x, episode.query_y):
        fast = {k: v.requires_grad_() for k, v in ((k, v.clone()) for k, v in params.items())}
        for _ in range(steps):
            loss = F.cross_entropy(torch.func.functional_call(model, (fast, buffers), (sx,)), sy)
            grads = torch.autograd.grad(loss, list(fast.values()))
            fast = {k: (v - lr * g).detach().requires_grad_() for (k, v), g in zip(fast.items(), grads)}
        logits = torch.func.functional_call(model, (fast, buffers), (qx,))
        scores.append(float((logits.argmax(-1) == qy).float().mean()))
    return scores


def report(title: str, seconds: dict[str, list[float]], accuracy: dict[str, float], peer: str) -> None:
    print(title)
    for name, values in seconds.items():
        median = statistics.median(values)
        ratio = statistics.median(values_peer / v for values_peer, v in zip(seconds[peer], values))
        print(
            f"  {name:<34}{1 / median:9.1f} episodes/s{1e3 * median:9.2f} ms/episode"
            f"{ratio:8.2f}x plain  accuracy {100 * accuracy[name]:.2f}%"
        )
    for name, values in seconds.items():
        if name != peer:
            per_round = " ".join(f"{p / v:.2f}" for p, v in zip(seconds[peer], values))
            print(f"  {name} vs {peer}, per round: {per_round}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="omniglot", help="omniglot (default) or glyphs")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/omniglot"))
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=6, help="chunks of the episode set; the methods alternate")
    parser.add_argument("--adapt-steps", type=int, default=3, help="MAML's inner steps at test time (its preset's)")
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--only", default="protonet,maml", help="protonet, maml or both")
    parser.add_argument("--threads", type=int, default=None)
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
    name = args.dataset
    try:
        dataset = get_dataset(name, root=args.data_root, split="test")
    except (FileNotFoundError, ModuleNotFoundError, ValueError) as error:
        print(f"{name} unavailable ({error}); falling back to glyphs")
        name, dataset = "glyphs", get_dataset("glyphs", split="test")
    sampler = EpisodeSampler(dataset, 5, 1, 15, seed=0)
    batch = batched_tasks(sampler)
    tasks = list(sampler.episodes(args.episodes, batch_size=batch))  # the same tasks as batch_size=1
    singles = [e.task(i) for e in tasks for i in range(e.batch_size)]
    per = max(1, len(tasks) // args.rounds)
    chunks = [tasks[i : i + per] for i in range(0, len(tasks), per)]
    single_chunks = [[e.task(i) for e in chunk for i in range(e.batch_size)] for chunk in chunks]
    assert sum(map(len, single_chunks)) == len(singles)
    shape = tuple(dataset.data.shape[1:])
    print(
        f"{name} test, {args.episodes} episodes 5-way 1-shot 15-query {shape}, {len(chunks)} interleaved rounds, "
        f"{torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )
    wanted = set(args.only.split(","))
    torch.manual_seed(0)
    if "protonet" in wanted:
        proto = ProtoNet(Conv4(in_channels=shape[0], image_size=shape[-1])).eval()
        proto.to(memory_format=torch.channels_last)  # as the trainer stores a metric learner's weights
        fns = {
            "plain loop (autograd on)": lambda chunk: [s for e in chunk for s in plain_protonet(proto.encoder, e)],
            "evaluate() on CPU (adapt per task)": lambda chunk: evaluate_episodes(proto, chunk).per_episode,
            f"evaluate(batch_size={batch}) (batched)": lambda chunk: evaluate_episodes(proto, chunk).per_episode,
        }
        inputs = {"evaluate() on CPU (adapt per task)": single_chunks}
        seconds, accuracy = run_rounds(fns, chunks, inputs)
        report("ProtoNet, Conv4 (channels-last), eval mode:", seconds, accuracy, "plain loop (autograd on)")
    if "maml" in wanted:
        model = Conv4(in_channels=shape[0], image_size=shape[-1], num_classes=5)
        maml = MAML(model, inner_lr=args.inner_lr, adapt_steps=args.adapt_steps).eval()
        steps = args.adapt_steps
        fns = {
            "plain loop (autograd on)": lambda chunk: [
                s for e in chunk for s in plain_maml(model, e, args.inner_lr, steps)
            ],
            "evaluate() (adapt per task)": lambda chunk: evaluate_episodes(maml, chunk).per_episode,
        }
        seconds, accuracy = run_rounds(fns, single_chunks, {})
        report(f"MAML, Conv4 + head, {steps} adaptation step(s):", seconds, accuracy, "plain loop (autograd on)")


def run_rounds(
    fns: dict[str, Callable[[list[Episode]], list[float]]],
    chunks: list[list[Episode]],
    inputs: dict[str, list[list[Episode]]],
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per task of each function on each chunk (they take turns) and its accuracy; the
    functions named in ``inputs`` take their own chunking of the same tasks."""
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    scores: dict[str, list[float]] = {name: [] for name in fns}
    for name, fn in fns.items():
        fn(inputs.get(name, chunks)[0][:1])  # warm-up
    for i in range(len(chunks)):
        for name, fn in fns.items():
            chunk = inputs.get(name, chunks)[i]
            count = sum(e.batch_size for e in chunk)
            start = time.perf_counter()
            scores[name] += fn(chunk)
            seconds[name].append((time.perf_counter() - start) / count)
    return seconds, {name: sum(v) / len(v) for name, v in scores.items()}


if __name__ == "__main__":
    main()
