"""Rollout throughput of ``vector=ray`` (environments stepped by Ray actors, the policy in this process)
against the in-process sampler, in the same run: environment steps per second of collecting one batch of
``--envs`` episodes of ``--horizon`` steps with a 100-100 Gaussian MLP policy, after one warm-up batch.

    OMP_NUM_THREADS=1 python benchmarks/rl_ray.py                       # cheetah-vel, 20 envs, a local Ray
    python benchmarks/rl_ray.py --address HEAD:6379 --envs-per-actor 5  # the actors on a running cluster
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from fewshot.rl.policy import GaussianMLPPolicy
from fewshot.rl.rollouts import Sampler
from fewshot.rl.tasks import get_family


def steps_per_second(family, envs: int, mode: str, repeats: int, **ray_options) -> tuple[float, int]:
    """(env steps / s over ``repeats`` batches after a warm-up one, number of Ray actors)."""
    sampler = Sampler(family, envs, mode, **ray_options)
    try:
        torch.manual_seed(0)
        policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, (100, 100))
        params = dict(policy.named_parameters())
        tasks, g = family.sample_tasks(1), torch.Generator().manual_seed(0)
        sampler.collect(policy, params, tasks, envs, g)  # warm up
        t0, steps = time.perf_counter(), 0
        for _ in range(repeats):
            steps += sampler.collect(policy, params, tasks, envs, g).steps()
        return steps / (time.perf_counter() - t0), len(getattr(sampler.env, "actors", []))
    finally:
        sampler.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", default="cheetah-vel")
    p.add_argument("--envs", type=int, default=20)
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2, help="measured batches per setting")
    p.add_argument("--envs-per-actor", type=int, action="append", help="Ray split(s) (default: one actor per CPU)")
    p.add_argument("--address", help="a running Ray cluster (default: RAY_ADDRESS or a new local one)")
    args = p.parse_args()
    family = get_family(args.family, horizon=args.horizon)
    rows = {"sync": steps_per_second(family, args.envs, "sync", args.repeats)[0]}
    for per_actor in args.envs_per_actor or [None]:
        speed, actors = steps_per_second(
            family, args.envs, "ray", args.repeats, envs_per_actor=per_actor, address=args.address
        )
        rows[f"ray ({actors} actors)"] = speed
    for name, speed in rows.items():
        print(f"{args.family}, {args.envs} envs, {name:>16}: {speed:9,.0f} env steps/s  ({speed / rows['sync']:.2f}x)")
    print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(), "load": os.getloadavg(), **rows}))


if __name__ == "__main__":
    main()
