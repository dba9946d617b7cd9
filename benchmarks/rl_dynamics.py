"""Dynamics adaptation (GrBAL-style) on HalfCheetah with varied physics: prediction error and MPC return.

Random-action episodes of ``--train-tasks`` physics settings train two models of the same size and steps:
GrBAL (meta-trained for one gradient step on the last M transitions) and a non-adaptive one (multi-task
regression); an oracle model is trained on the held-out setting's own data. On held-out settings (heavier
and lighter bodies, a disabled joint, and a joint disabled mid-episode) it reports the one-step prediction
error and the return of random-shooting MPC with each model, GrBAL adapting online at every step.

    OMP_NUM_THREADS=1 nice python benchmarks/rl_dynamics.py --steps 300 --episode 100     # minutes on 1 core
    python benchmarks/rl_dynamics.py --train-tasks 100 --episodes 10 --steps 20000 --episode 1000 --candidates 2000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fewshot.rl.dynamics import DynamicsModel, GrBAL, collect_random, mpc_episode
from fewshot.rl.tasks import get_family


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-tasks", type=int, default=20)
    p.add_argument("--episodes", type=int, default=2, help="random-action episodes per training task")
    p.add_argument("--steps", type=int, default=300, help="model training steps (each model)")
    p.add_argument("--episode", type=int, default=100, help="MPC episode length")
    p.add_argument("--candidates", type=int, default=500)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--out", default="runs/rl-dynamics.json")
    args = p.parse_args()
    t0 = time.perf_counter()
    family = get_family("cheetah-physics", horizon=100)
    train = collect_random(
        family, family.sample_tasks(args.train_tasks, torch.Generator().manual_seed(0)), args.episodes, 0
    )
    models = {}
    for name, adapt in (("grbal", True), ("non-adaptive", False)):
        torch.manual_seed(0)
        models[name] = GrBAL(DynamicsModel(17, 6, (args.hidden, args.hidden)), inner_lr=0.05)
        models[name].meta_train(train, args.steps, adapt=adapt)
    print(f"data and training: {time.perf_counter() - t0:.0f} s", flush=True)
    healthy = dict(mass_scale=1.0, damping_scale=1.0, friction_scale=1.0, disabled_joint=-1)
    settings = {
        "heavy (mass x1.4, damping x0.6)": (family.task(**{**healthy, "mass_scale": 1.4, "damping_scale": 0.6}), None),
        "light (mass x0.6, friction x0.6)": (
            family.task(**{**healthy, "mass_scale": 0.6, "friction_scale": 0.6}),
            None,
        ),
        "front thigh disabled": (family.task(**{**healthy, "disabled_joint": 3}), None),
        "back thigh disabled mid-episode": (
            family.task(**healthy),
            (args.episode // 2, family.task(**{**healthy, "disabled_joint": 0})),
        ),
    }
    rows = {}
    for label, (task, switch) in settings.items():
        own = collect_random(family, [switch[1] if switch else task], args.episodes * 5, 1)
        torch.manual_seed(0)
        oracle = GrBAL(DynamicsModel(17, 6, (args.hidden, args.hidden)), inner_lr=0.05)
        oracle.meta_train(own, args.steps, adapt=False)
        row = {}
        for name, model, adapt in (
            ("grbal (adapted online)", models["grbal"], True),
            ("same model, not adapted", models["grbal"], False),
            ("non-adaptive model", models["non-adaptive"], False),
            ("oracle (trained on this setting)", oracle, False),
        ):
            row[name] = mpc_episode(
                model, family, task, adapt, args.episode, seed=3, candidates=args.candidates, switch=switch
            )
        rows[label] = row
        print(label, json.dumps(row), flush=True)
    print("\n| held-out physics | model | MPC return | one-step error (normalised) |\n| --- | --- | --- | --- |")
    for label, row in rows.items():
        for name, r in row.items():
            print(f"| {label} | {name} | {r['return']:.1f} | {r['model_error']:.3f} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
