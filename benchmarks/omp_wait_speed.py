"""OpenMP's wait policy on a shared CPU: a ProtoNet training step with libgomp's default
(threads spin between parallel regions) against ``OMP_WAIT_POLICY=PASSIVE`` (they sleep).

The policy is read when torch loads its OpenMP runtime, so every measurement runs in a fresh
process with the variable set; the processes alternate, round after round, and each prints its
median step time. On a machine whose cores are all busy with other work (load average above the
core count), a spinning thread holds a core that the thread it waits for needs, and every
parallel region can wait a scheduler time slice. The load average is printed with the figures.

    OMP_NUM_THREADS=2 python benchmarks/omp_wait_speed.py
    OMP_NUM_THREADS=2 python benchmarks/omp_wait_speed.py --rounds 6 --steps 5 --batch 80
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = """
import statistics, sys, time, torch
from fewshot.algorithms.metric import ProtoNet
from fewshot.data import Episode
from fewshot.engine.memory import keep_freed_memory
from fewshot.nn import Conv4
keep_freed_memory()
torch.manual_seed(0)
steps, images = int(sys.argv[1]), int(sys.argv[2])
ways, shots = 5, 1
queries = max(1, images // ways - shots)
episode = Episode(
    torch.rand(1, ways * shots, 1, 28, 28), torch.arange(ways).repeat_interleave(shots)[None],
    torch.rand(1, ways * queries, 1, 28, 28), torch.arange(ways).repeat_interleave(queries)[None],
)
model = ProtoNet(Conv4()).train().to(memory_format=torch.channels_last)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
def step():
    loss = model.meta_loss(episode)[0]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
step()
times = []
for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process (median taken)")
    parser.add_argument("--batch", type=int, default=80, help="images per step (5-way 1-shot: 5 + queries)")
    args = parser.parse_args()
    policies = {"default (spin)": None, "PASSIVE": "PASSIVE"}
    seconds: dict[str, list[float]] = {name: [] for name in policies}
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for name, policy in policies.items():
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy is not None:
                env["OMP_WAIT_POLICY"] = policy
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.steps), str(args.batch)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            seconds[name].append(float(out.stdout.strip().splitlines()[-1]))
    load_after = os.getloadavg()
    threads = os.environ.get("OMP_NUM_THREADS", "torch's default")
    print(
        f"ProtoNet Conv4 step on {args.batch} images 28x28, OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    for name, values in seconds.items():
        print(
            f"  {name:<16}{1e3 * statistics.median(values):9.1f} ms/step  rounds: "
            + " ".join(f"{1e3 * v:.0f}" for v in values)
        )
    ratios = [a / b for a, b in zip(seconds["default (spin)"], seconds["PASSIVE"])]
    print("  spin / passive time per round: " + " ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
