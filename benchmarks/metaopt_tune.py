"""Hyperparameter search: TPE against random sampling on a cheap objective, and the throughput of
``fewshot tune`` with J worker processes on one SQLite study against one worker.

samplers: tune Adam (log learning rate, beta1, log(1 - beta2)) for 100 steps of an MLP on digits
(the mlp-digits optimizee of fewshot.metaopt, one fixed problem), minimising the full-data training
loss; TRIALS trials per search, SEEDS seeds per sampler; prints the mean best-so-far loss (and its
95% interval over seeds) after 10, 20, 30 and TRIALS trials.

workers: ``fewshot tune`` on a small sinusoid MAML configuration (STEPS training steps of meta-batch 25
per trial) with --jobs 1 and --jobs J, N trials each into a fresh SQLite file; prints trials per second.

    OMP_NUM_THREADS=1 python benchmarks/metaopt_tune.py --part samplers --trials 60 --seeds 5
    OMP_NUM_THREADS=1 python benchmarks/metaopt_tune.py --part workers --trials 12 --jobs 2 --steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch


def adam_objective():
    from fewshot.metaopt import optimizee_family
    from fewshot.metaopt.evaluate import optimize

    problem = optimizee_family("mlp-digits", "val", 0).next()

    def objective(trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        beta1 = trial.suggest_float("beta1", 0.0, 0.99)
        one_minus_beta2 = trial.suggest_float("one_minus_beta2", 1e-4, 0.1, log=True)
        make = lambda ps: torch.optim.Adam(ps, lr=lr, betas=(beta1, 1 - one_minus_beta2))  # noqa: E731
        loss = optimize(problem, make, 100).losses[100]
        return loss if math.isfinite(loss) else 10.0

    return objective


def samplers(trials: int, seeds: int) -> None:
    objective = adam_objective()
    marks = sorted({10, 20, 30, trials} & set(range(1, trials + 1)))
    print(f"Adam on mlp-digits, 100 steps; {trials} trials x {seeds} seeds per sampler")
    print("| sampler | " + " | ".join(f"best after {m} trials" for m in marks) + " | seconds |")
    print("| --- | " + " | ".join("---" for _ in marks) + " | --- |")
    for name in ("random", "tpe"):
        began = time.perf_counter()
        curves = []
        for seed in range(seeds):
            sampler = optuna.samplers.RandomSampler(seed) if name == "random" else optuna.samplers.TPESampler(seed=seed)
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective, n_trials=trials)
            values = [t.value for t in study.trials]
            curves.append([min(values[:m]) for m in marks])
        cells = []
        for i in range(len(marks)):
            column = [c[i] for c in curves]
            half = 1.96 * statistics.stdev(column) / math.sqrt(len(column)) if len(column) > 1 else 0.0
            cells.append(f"{statistics.mean(column):.4g} ± {half:.2g}")
        print(f"| {name} | " + " | ".join(cells) + f" | {time.perf_counter() - began:.0f} |")


def workers(trials: int, jobs: int, steps: int) -> None:
    from fewshot.metaopt.tune import main

    space = "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    fixed = ["--config", "sinusoid-maml-k5", "--set", f"steps={steps}", "--set", f"val_every={steps}"]
    fixed += ["--set", "val_episodes=20", "--set", "test_episodes=0", "--sampler", "random"]
    print(f"fewshot tune, sinusoid MAML with {steps} steps per trial, {trials} trials into a fresh SQLite study")
    print("| workers | seconds | trials per second | speed-up |")
    print("| --- | --- | --- | --- |")
    base = None
    for j in sorted({1, jobs}):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "space.yaml").write_text(space)
            began = time.perf_counter()
            argv = [*fixed, "--space", f"{tmp}/space.yaml", "--trials", str(trials), "--jobs", str(j), "--out", tmp]
            with contextlib.redirect_stdout(io.StringIO()):  # its own summary line
                assert main(argv) == 0
            seconds = time.perf_counter() - began
        base = base or seconds
        print(f"| {j} | {seconds:.1f} | {trials / seconds:.3g} | {base / seconds:.2f}x |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("samplers", "workers"), required=True)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="training steps per trial (workers)")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f}, torch {torch.__version__}")
    if args.part == "samplers":
        samplers(args.trials, args.seeds)
    else:
        workers(args.trials, args.jobs, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
