"""CPU training-step time with and without ``keep_freed_memory`` (glibc: no mmap, no trim).

Each preset's real training step (the trainer's ``train_step`` on sampled episodes) is
timed in child processes that take turns: one with the trainer's default
(``keep_freed_memory=true``), one with ``keep_freed_memory=false`` (glibc's own malloc
settings), ``--rounds`` times each, so a busy machine slows both alike. The malloc
settings are process-wide and cannot be undone, hence one process per measurement.

    python benchmarks/cpu_memory_speed.py
    python benchmarks/cpu_memory_speed.py --presets omniglot-protonet-5w1s --steps 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, tempfile, time
from fewshot.api import Learner
from fewshot.engine.train import Trainer
preset, root, keep, steps = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
with tempfile.TemporaryDirectory() as out:
    learner = Learner(config=preset, data_root=root, out=out, quiet=True, keep_freed_memory=keep)
    trainer = Trainer(learner.config, learner.algorithm, learner.train_data, spec=learner.spec)
    for _ in range(3):
        trainer.train_step(trainer.batches.next())
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(trainer.batches.next())
    print(json.dumps((time.perf_counter() - start) / steps))
"""


def step_seconds(preset: str, root: str, keep: bool, steps: int, threads: int | None) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    args = [sys.executable, "-c", CHILD, preset, root, "1" if keep else "0", str(steps)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["omniglot-relation-5w1s", "omniglot-reptile-5w1s"])
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared/data/omniglot"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting, taking turns")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the children")
    args = parser.parse_args()

    print(f"median of {args.rounds} processes per setting, {args.steps} steps each (after 3 untimed)")
    print(f"{'preset':>26} {'glibc default':>14} {'keep memory':>12} {'speed-up':>9}")
    for preset in args.presets:
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for keep in (False, True):
                times[keep].append(step_seconds(preset, args.data_root, keep, args.steps, args.threads))
        default, keep = statistics.median(times[False]), statistics.median(times[True])
        print(f"{preset:>26} {1e3 * default:11.1f} ms {1e3 * keep:9.1f} ms {default / keep:8.2f}x")


if __name__ == "__main__":
    main()
