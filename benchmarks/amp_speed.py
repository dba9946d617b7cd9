"""bfloat16 autocast on CPU (the trainer's ``amp``) against float32: ProtoNet 5-way 1-shot
meta-training speed and the test accuracy it reaches at a small, stated budget.

Two trainers with the same seed (hence the same initial weights and the same episodes), one with
``amp=True``, take turns: ``--chunk`` steps each, ``--rounds`` times, so a busy machine slows both
alike; then each is tested in float32 on the same ``--test-episodes`` fixed episodes (mean and
95% CI). The matmul ceilings of both precisions and each step's fraction of them are printed.

    python benchmarks/amp_speed.py --data-root ../shared/data/omniglot
    python benchmarks/amp_speed.py --dataset glyphs --rounds 5 --chunk 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from flops_speed import matmul_ceiling, step_flops

from fewshot.algorithms.metric import ProtoNet
from fewshot.data import get_dataset
from fewshot.engine import TrainConfig, Trainer, evaluate
from fewshot.engine.precision import bf16_supported
from fewshot.nn import Conv4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="omniglot", help="omniglot (default) or glyphs")
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/omniglot"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=20, help="steps per trainer per round")
    parser.add_argument("--test-episodes", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.dataset
    try:
        train, test = (get_dataset(name, root=args.data_root, split=s) for s in ("train", "test"))
    except (FileNotFoundError, ModuleNotFoundError, ValueError) as error:
        print(f"{name} unavailable ({error}); falling back to glyphs")
        name = "glyphs"
        train, test = (get_dataset(name, split=s) for s in ("train", "test"))
    steps = args.rounds * args.chunk
    shape = tuple(train.data.shape[1:])
    with tempfile.TemporaryDirectory() as tmp:
        trainers: dict[str, Trainer] = {}
        for label, amp in (("float32", False), ("bfloat16 autocast", True)):
            config = TrainConfig(
                algorithm="protonet",
                dataset=name,
                ways=5,
                shots=1,
                queries=15,
                steps=steps,
                lr=args.lr,
                schedule="constant",
                amp=amp,
                device="cpu",
                out=str(Path(tmp) / label.split()[0]),
                quiet=True,
                tensorboard=False,
            )
            torch.manual_seed(0)
            algorithm = ProtoNet(Conv4(in_channels=shape[0], image_size=shape[-1]))
            trainers[label] = Trainer(config, algorithm, train)
        seconds: dict[str, list[float]] = {label: [] for label in trainers}
        for _ in range(args.rounds):
            for label, trainer in trainers.items():
                start = time.perf_counter()
                for _ in range(args.chunk):
                    trainer.train_step(trainer.batches.next())
                seconds[label].append((time.perf_counter() - start) / args.chunk)
        probe = trainers["float32"]
        episode = probe.batches.next()
        flops = step_flops(lambda: probe.algorithm.meta_loss(episode)[0].backward())
        results = {
            label: evaluate(trainer.algorithm, test, 5, 1, 15, episodes=args.test_episodes, seed=1)
            for label, trainer in trainers.items()
        }
    ceiling32 = matmul_ceiling(torch.float32)
    ceiling16 = matmul_ceiling(torch.bfloat16)
    print(
        f"ProtoNet Conv4 5-way 1-shot 15-query on {name} {shape}, {steps} steps (Adam, lr {args.lr}), "
        f"{args.rounds} interleaved rounds of {args.chunk} steps, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}, native bfloat16: {bf16_supported(torch.device('cpu'))}"
    )
    print(
        f"matmul ceilings (same run): float32 {ceiling32 / 1e9:.1f} GFLOP/s, bfloat16 {ceiling16 / 1e9:.1f} GFLOP/s; "
        f"a step is {flops / 1e9:.2f} GFLOP (torch flop counter)"
    )
    for label, values in seconds.items():
        sec = statistics.median(values)
        print(
            f"  {label:<18}{1 / sec:7.2f} steps/s  {flops / sec / ceiling32:.2f} of the float32 ceiling, "
            f"{flops / sec / ceiling16:.2f} of the bfloat16 one;  test {results[label]}"
        )
    ratios = [a / b for a, b in zip(seconds["float32"], seconds["bfloat16 autocast"])]
    print("  bfloat16 speed / float32 speed per round: " + " ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
