"""ProtoNet meta-training speed: episodes per second, data pipeline included.

One step = sample an episode (index gather from the in-memory dataset) + forward +
backward + Adam step, 5-way 1-shot 15-query with a Conv4 on 28x28 Omniglot by default.
Also timed apart: the sampler alone and the model alone (one fixed episode), and, as a
peer in the same run, a naive ProtoNet step (a loop over tasks and classes, separate
encoder calls for support and query), so the figures come with a ratio, printed per round
as well as for the medians. ``--amp`` adds the model step under bfloat16 autocast (the
trainer's ``amp`` setting). Every model step is also given as a fraction of the float32
matmul ceiling measured in the same run (``flops_speed.py``).

With easyfsl installed, its documented episodic pipeline is timed as a full-step peer too: its
``TaskSampler`` through a ``DataLoader`` (in-process, as fewshot samples) over the same
in-memory images, and its ``PrototypicalNetworks`` on the same Conv4 (NCHW, as a user gets it).
Install it with ``pip install --no-deps easyfsl==1.5.0``: its sampler and ProtoNet need only
torch, and the modules are loaded on their own, because the package's ``__init__`` files import
torchvision (for datasets and backbones not used here), whose PyPI build needs torch's CUDA build.
learn2learn does not build on Python 3.11.

With one task per episode (the default) the batched and the naive step do the same work:
one encoder call on 80 images against two on 5 and 75, so their ratio is about 1 and a
figure away from 1 is the machine's noise (docs/speed.md); batching pays from
``--meta-batch`` 2 up, where the naive loop makes 2 encoder calls per task.

    python benchmarks/protonet_speed.py --data-root ../shared/data/omniglot
    python benchmarks/protonet_speed.py --dataset glyphs --meta-batch 4 --device cuda
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from flops_speed import matmul_ceiling, step_flops

from fewshot.algorithms.metric import ProtoNet
from fewshot.data import Episode, EpisodeSampler, get_dataset
from fewshot.engine.memory import keep_freed_memory
from fewshot.nn import Conv4


def load_easyfsl() -> tuple[type, type, type] | None:
    """easyfsl's ``FewShotDataset``, ``TaskSampler`` and ``PrototypicalNetworks``, or None when it is
    not installed; its packages are registered without running their ``__init__`` (see above)."""
    spec = importlib.util.find_spec("easyfsl")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    for package in ("easyfsl", "easyfsl.datasets", "easyfsl.methods", "easyfsl.samplers"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
            sys.modules[package] = module
    from easyfsl.datasets.few_shot_dataset import FewShotDataset

    sys.modules["easyfsl.datasets"].FewShotDataset = FewShotDataset  # what task_sampler imports
    from easyfsl.methods.prototypical_networks import PrototypicalNetworks
    from easyfsl.samplers.task_sampler import TaskSampler

    return FewShotDataset, TaskSampler, PrototypicalNetworks


def easyfsl_step(dataset, args: argparse.Namespace, device: torch.device) -> Callable[[], None] | None:
    """One step of easyfsl's episodic training, sampler and loader included (``None`` without easyfsl)."""
    parts = load_easyfsl()
    if parts is None or args.meta_batch != 1:
        return None
    base, task_sampler, protonet = parts

    class View(base):  # type: ignore[misc, valid-type]
        """The same images as easyfsl's datasets serve them: (float image, int label)."""

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            return dataset[i]

        def __len__(self) -> int:
            return len(dataset)

        def get_labels(self) -> list[int]:
            return dataset.labels.tolist()

    class TakesDataSource(torch.utils.data.Sampler):
        """easyfsl 1.5.0's TaskSampler calls ``Sampler.__init__(data_source=None)``, which current
        torch no longer accepts (the "breaks on current torch" of its users); this base takes it."""

        def __init__(self, data_source: object = None) -> None:
            pass

    class Sampler(task_sampler, TakesDataSource):  # type: ignore[misc, valid-type]
        pass

    view = View()
    sampler = Sampler(view, args.ways, args.shots, args.queries, n_tasks=10**9)
    loader = iter(torch.utils.data.DataLoader(view, batch_sampler=sampler, collate_fn=sampler.episodic_collate_fn))
    torch.manual_seed(0)
    model = protonet(Conv4(in_channels=dataset.data.shape[1], image_size=dataset.data.shape[-1])).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        sx, sy, qx, qy, _ = next(loader)
        model.process_support_set(sx.to(device), sy.to(device))
        loss = F.cross_entropy(model(qx.to(device)), qy.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def naive_protonet_loss(encoder: torch.nn.Module, episode: Episode) -> torch.Tensor:
    """The textbook loop: per task, encode support and query apart, per-class means."""
    losses = []
    for t in range(episode.batch_size):
        zs, zq = encoder(episode.support_x[t]), encoder(episode.query_x[t])
        sy = episode.support_y[t]
        prototypes = torch.stack([zs[sy == c].mean(0) for c in range(int(sy.max()) + 1)])
        losses.append(F.cross_entropy(-(torch.cdist(zq, prototypes) ** 2), episode.query_y[t]))
    return torch.stack(losses).mean()


def timed(fns: dict[str, Callable[[], None]], steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each function in every round. The functions take turns, ``rounds``
    times ``steps`` calls each (after one untimed warm-up round), so a busy machine slows them alike."""

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
    return samples


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
    parser.add_argument("--amp", action="store_true", help="also time the model step under bfloat16 autocast")
    parser.add_argument(
        "--no-channels-last",
        action="store_true",
        help="keep conv weights NCHW (the trainer uses channels-last by default)",
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

    def bf16_step(episode: Episode) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model.meta_loss(episode)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    fixed = sampler.sample()
    fns = {
        "full": lambda: step(sampler.sample()),
        "sampler": sampler.sample,
        "model": lambda: step(fixed),
        "naive": lambda: step(fixed, lambda e: naive_protonet_loss(model.encoder, e)),
    }
    if args.amp:
        fns["bf16"] = lambda: bf16_step(fixed)
        fns["full bf16"] = lambda: bf16_step(sampler.sample())
    peer = easyfsl_step(dataset, args, device)
    if peer is not None:
        fns["easyfsl"] = peer
    rounds = timed(fns, args.episodes, args.rounds, device)
    seconds = {k: statistics.median(v) for k, v in rounds.items()}
    full, sample_only, model_only, naive = (seconds[k] for k in ("full", "sampler", "model", "naive"))
    flops = step_flops(lambda: step(fixed))
    ceiling = matmul_ceiling(torch.float32, device=device.type)
    ceiling_bf16 = matmul_ceiling(torch.bfloat16, device=device.type) if args.amp else None

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
    if peer is not None:
        easyfsl = seconds["easyfsl"]
        print(f"easyfsl      {1 / easyfsl:8.1f} episodes/s  (its TaskSampler, DataLoader, PrototypicalNetworks)")
        for key in ("full", "full bf16"):
            if key in rounds:
                per_round = " ".join(f"{e / f:.2f}" for e, f in zip(rounds["easyfsl"], rounds[key]))
                print(f"  {key} step against easyfsl: {easyfsl / seconds[key]:.2f}x (per round {per_round})")
    else:
        print("easyfsl      not timed (pip install --no-deps easyfsl==1.5.0; one task per episode only)")
    print(f"sampler only {1e3 * sample_only:8.3f} ms/episode  ({100 * sample_only / parts:.1f}% of sampler + model)")
    print(f"model only   {1e3 * model_only:8.3f} ms/episode  ({100 * model_only / parts:.1f}% of sampler + model)")
    print(f"naive peer   {1e3 * naive:8.3f} ms/episode  (model only; batched is {naive / model_only:.2f}x as fast)")
    per_round = " ".join(f"{n / m:.2f}" for n, m in zip(rounds["naive"], rounds["model"]))
    print(f"naive/batched per round: {per_round}")
    print(
        f"ceiling      float32 matmul {ceiling / 1e9:.1f} GFLOP/s (same run); model step {flops / 1e9:.2f} GFLOP "
        f"(torch flop counter): {flops / model_only / 1e9:.1f} GFLOP/s = {flops / model_only / ceiling:.2f} of it"
    )
    if ceiling_bf16 is not None:
        bf16 = seconds["bf16"]
        print(
            f"bf16 autocast {1e3 * bf16:7.3f} ms/episode  ({model_only / bf16:.2f}x the float32 model step; "
            f"{flops / bf16 / 1e9:.1f} GFLOP/s = {flops / bf16 / ceiling:.2f} of the float32 ceiling, "
            f"{flops / bf16 / ceiling_bf16:.2f} of the bfloat16 one, {ceiling_bf16 / 1e9:.1f} GFLOP/s)"
        )
        per_round = " ".join(f"{m / b:.2f}" for m, b in zip(rounds["model"], rounds["bf16"]))
        print(f"float32/bf16 time per round: {per_round}")
        full_bf16 = seconds["full bf16"]
        print(f"full bf16    {1 / full_bf16:8.1f} episodes/s  ({full / full_bf16:.2f}x the float32 full step)")


if __name__ == "__main__":
    main()
