"""ProtoNet meta-training speed: episodes per second, data pipeline included.

One step = sample an episode (index gather from the in-memory dataset) + forward +
backward + Adam step, 5-way 1-shot 15-query with a Conv4 on 28x28 Omniglot by default.
Also timed apart: the sampler alone and the model alone (one fixed episode), and, as a
peer in the same run, a naive ProtoNet step (a loop over tasks and classes, separate
encoder calls for support and query), so the figures come with a ratio.

    python benchmarks/protonet_speed.py --data-root ../shared/data/omniglot
    python benchmarks/protonet_speed.py --dataset glyphs --meta-batch 4 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fewshot.algorithms.metric import ProtoNet
from fewshot.data import Episode, EpisodeSampler, get_dataset
from fewshot.nn import Conv4


def naive_protonet_loss(encoder: torch.nn.Module, episode: Episode) -> torch.Tensor:
    """The textbook loop: per task, encode support and query apart, per-class means."""
    losses = []
    for t in range(episode.batch_size):
        zs, zq = encoder(episode.support_x[t]), encoder(episode.query_x[t])
        sy = episode.support_y[t]
        prototypes = torch.stack([zs[sy == c].mean(0) for c in range(int(sy.max()) + 1)])
        losses.append(F.cross_entropy(-(torch.cdist(zq, prototypes) ** 2), episode.query_y[t]))
    return torch.stack(losses).mean()


def timed(fns: dict[str, Callable[[], None]], steps: int, rounds: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function. The functions take turns, ``rounds`` times
    ``steps`` calls each (after one untimed warm-up round), so a busy machine slows them alike."""

    def run(fn: Callable[[], None]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / steps

    for fn in fns.values():
        run(fn)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(run(fn))
    return {name: statistics.median(values) for name, values in samples.items()}


def load(name: str, root: str | None) -> tuple[object, str]:
    """The train split of ``name``; glyphs (built in) if Omniglot cannot be loaded from ``root``."""
    if name == "omniglot":
        try:
            return get_dataset("omniglot", root=root, split="train"), "omniglot"
        except (FileNotFoundError, ModuleNotFoundError, ValueError) as error:
            print(f"omniglot unavailable ({error}); falling back to glyphs")
            name = "glyphs"
    return get_dataset(name, root=root, split="train"), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="omniglot", help="omniglot (default) or glyphs")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/omniglot"))
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--meta-batch", type=int, default=1, help="tasks per episode")
    parser.add_argument("--episodes", type=int, default=20, help="timed steps per round and measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median round is reported")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--no-channels-last",
        action="store_true",
        help="keep conv weights NCHW (the trainer uses channels-last by default)",
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    start = time.perf_counter()
    dataset, name = load(args.dataset, args.data_root)
    load_s = time.perf_counter() - start
    dataset = dataset.to(device)  # held as one uint8 tensor on the device: sampling is a gather
    sampler = EpisodeSampler(
        dataset, args.ways, args.shots, args.queries, seed=0, batch_size=args.meta_batch, device=device
    )
    torch.manual_seed(0)
    model = ProtoNet(Conv4(in_channels=dataset.data.shape[1], image_size=dataset.data.shape[-1])).to(device).train()
    if not args.no_channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(episode: Episode, loss_fn=model.meta_loss) -> None:
        loss = loss_fn(episode)
        loss = loss[0] if isinstance(loss, tuple) else loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    fixed = sampler.sample()
    seconds = timed(
        {
            "full": lambda: step(sampler.sample()),
            "sampler": sampler.sample,
            "model": lambda: step(fixed),
            "naive": lambda: step(fixed, lambda e: naive_protonet_loss(model.encoder, e)),
        },
        args.episodes,
        args.rounds,
        device,
    )
    full, sample_only, model_only, naive = (seconds[k] for k in ("full", "sampler", "model", "naive"))

    tasks = args.meta_batch
    print(
        f"dataset      {name} train: {len(dataset)} images {tuple(dataset.data.shape[1:])}, "
        f"{dataset.num_classes} classes (loaded in {load_s:.1f} s)"
    )
    print(f"timing       median of {args.rounds} interleaved rounds of {args.episodes} steps each")
    print(
        f"setting      {args.ways}-way {args.shots}-shot {args.queries}-query, {tasks} task(s)/episode, "
        f"Conv4{'' if args.no_channels_last else ' (channels-last)'}, Adam, device {device}, "
        f"{torch.get_num_threads()} CPU thread(s), torch {torch.__version__}"
    )
    print(f"full step    {1 / full:8.1f} episodes/s  {tasks / full:8.1f} tasks/s  ({1e3 * full:.2f} ms/episode)")
    parts = sample_only + model_only
    print(f"sampler only {1e3 * sample_only:8.3f} ms/episode  ({100 * sample_only / parts:.1f}% of sampler + model)")
    print(f"model only   {1e3 * model_only:8.3f} ms/episode  ({100 * model_only / parts:.1f}% of sampler + model)")
    print(f"naive peer   {1e3 * naive:8.3f} ms/episode  (model only; batched is {naive / model_only:.2f}x as fast)")


if __name__ == "__main__":
    main()
