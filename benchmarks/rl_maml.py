"""MAML-RL against its baselines (MAML paper, section 5.3), and rollout throughput.

Trains three policies of a family's presets with the same budget and seed (MAML; a multi-task pretrained
policy; an oracle that sees the task parameters), builds a randomly initialised one, and evaluates all four
on the same held-out tasks after 0..3 policy-gradient steps with the same inner rule. Then measures
environment steps per second of batched rollout collection against a plain single-environment loop, in the
same process.

    OMP_NUM_THREADS=1 nice python benchmarks/rl_maml.py --iterations 30 --out runs/rl-bench        # point nav
    python benchmarks/rl_maml.py --family cheetah-vel --iterations 20 --out runs/rl-cheetah      # CPU minutes
    # paper scale (MAML: 40 tasks x 20 episodes of 200 steps, 100-100 policy, ~500 iterations), 16 cores:
    python benchmarks/rl_maml.py --family cheetah-vel --iterations 500 --set meta_batch=40 --set episodes=20 \
        --set family_options.horizon=200 --set hidden=[100,100] --set vector=async --out runs/rl-cheetah-paper
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import yaml

from fewshot.rl.config import preset
from fewshot.rl.evaluate import adaptation_curve, held_out_tasks
from fewshot.rl.policy import GaussianMLPPolicy
from fewshot.rl.rollouts import Sampler, collect_single
from fewshot.rl.tasks import get_family
from fewshot.rl.train import RLTrainer, load_policy


def throughput(family_name: str, envs: int, steps_single: int, modes: tuple[str, ...] = ("sync",)) -> dict:
    """Env steps/s: ``envs`` environments stepped as one batch (one policy call a step) vs one env at a time."""
    family = get_family(family_name, horizon=100)
    tasks = family.sample_tasks(envs)
    g = torch.Generator().manual_seed(0)
    out = {}
    for mode in modes:
        sampler = Sampler(family, envs, mode)
        policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, (100, 100))
        params = dict(policy.named_parameters())
        sampler.collect(policy, params, tasks[:1], envs, g)  # warm up
        t0 = time.perf_counter()
        batch = sampler.collect(policy, params, tasks[:1], envs, g)
        out[f"batched_{mode}"] = batch.steps() / (time.perf_counter() - t0)
        sampler.close()
    episodes = max(1, steps_single // family.horizon)
    t0 = time.perf_counter()
    collect_single(family, policy, params, tasks[0], episodes, seed=0)
    out["single_loop"] = episodes * family.horizon / (time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--family", default="pointnav", help="preset prefix: pointnav, cheetah-vel, cheetah-dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="setting for all three runs")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--tasks", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/rl-bench")
    p.add_argument("--skip-train", action="store_true", help="evaluate the runs already in --out")
    p.add_argument("--cheetah", action="store_true", help="also the HalfCheetah throughput rows")
    args = p.parse_args()
    out = Path(args.out)
    runs, seconds = {}, {}
    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    for method in ("maml", "pretrained", "oracle"):
        run = out / f"{args.family}-{method}"
        if not args.skip_train:
            config = preset(f"{args.family}-{method}", {**overrides, "iterations": args.iterations, "seed": args.seed})
            t0 = time.perf_counter()
            if not RLTrainer.create(config, run, quiet=True, overwrite=True).run()["completed"]:
                sys.exit(f"{run}: stopped; resume it with fewshot rl train --resume {run}, then pass --skip-train")
            seconds[method] = time.perf_counter() - t0
            print(f"trained {method} in {seconds[method]:.0f} s", flush=True)
        runs[method] = run

    rows = {}
    config, _, _ = load_policy(runs["maml"])
    family = get_family(config.family, **config.family_options)
    tasks = held_out_tasks(family, args.tasks)
    for method, run in runs.items():
        cfg, _, policy = load_policy(run)
        sampler = Sampler(family, cfg.episodes * cfg.meta_batch, cfg.vector, oracle=method == "oracle")
        rows[method] = adaptation_curve(policy, config, sampler, tasks, [0, 1, 2, 3])["steps"]
        sampler.close()
    sampler = Sampler(family, config.episodes * config.meta_batch, config.vector)
    torch.manual_seed(args.seed + 1)
    fresh = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, config.hidden, config.activation, config.init_std)
    rows["random"] = adaptation_curve(fresh, config, sampler, tasks, [0, 1, 2, 3])["steps"]
    sampler.close()

    print(f"\n{config.family}, {args.tasks} held-out tasks, {config.episodes} episodes per step, mean return ± 95% CI")
    print("| method | 0 steps | 1 step | 2 steps | 3 steps |\n| --- | --- | --- | --- | --- |")
    for method, steps in rows.items():
        cells = " | ".join(f"{steps[k]['mean']:.1f} ± {steps[k]['ci95']:.1f}" for k in ("0", "1", "2", "3"))
        print(f"| {method} | {cells} |")

    speed = {"pointnav (400 envs)": throughput("pointnav", 400, 4000)}
    if args.cheetah or config.family.startswith("cheetah"):
        speed["cheetah-vel (20 envs)"] = throughput("cheetah-vel", 20, 2000, ("sync", "async"))
    print("\nenvironment steps per second, collection with a 100-100 Gaussian MLP policy")
    columns = ["batched_sync", "batched_async", "single_loop"]
    print("| environment | " + " | ".join(columns) + " | batched / single |\n|" + " --- |" * (len(columns) + 2))
    for name, row in speed.items():
        best = max(v for k, v in row.items() if k.startswith("batched"))
        cells = " | ".join(f"{row[c]:,.0f}" if c in row else "-" for c in columns)
        print(f"| {name} | {cells} | {best / row['single_loop']:.1f}x |")
    result = {
        "iterations": args.iterations,
        "train_seconds": seconds,
        "adaptation": rows,
        "throughput": speed,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)",
    }
    (out / f"{args.family}_table.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
