"""``fewshot rl train | evaluate | plot | render | zero-shot | serve | families``.

Bad input (an unknown preset, family or setting, a task parameter out of range, MuJoCo missing) is one
line on stderr and exit status 2; a run stopped by Ctrl-C saves ``last/``, exits 130, and resumes with
``fewshot rl train --resume RUN``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fewshot.commandline import EXIT_INTERRUPTED, Parser, UsageError, one_line_errors, parse_settings
from fewshot.engine.checkpoint import CheckpointError
from fewshot.rl.errors import RLError


def _settings(pairs: list[str]) -> dict:
    return parse_settings(pairs, RLError)


def _steps(text: str) -> list[int]:
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise RLError(f"--adapt-steps takes integers like 0,1,2,3, got {text!r}") from None
    if not steps or steps[0] < 0:
        raise RLError(f"--adapt-steps takes integers >= 0, got {text!r}")
    return steps


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fewshot rl", description="Meta-reinforcement learning: MAML-RL and its baselines.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="meta-train (or multi-task train) a policy into a run folder")
    t.add_argument(
        "--config", help="preset: pointnav-maml, pointnav-pretrained, pointnav-oracle, cheetah-vel-maml, ..."
    )
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="setting (repeatable)")
    t.add_argument("--out", help="run folder (default runs/rl/<time>-<preset>)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in RUN (--set may change iterations)")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the result as one JSON object")
    t.set_defaults(handler=run_train)

    e = sub.add_parser("evaluate", help="adaptation curve on held-out tasks: mean return and 95%% CI per step")
    e.add_argument("run", metavar="RUN", help="run folder (or its checkpoint/)")
    e.add_argument("--adapt-steps", default="0,1,2,3", help="inner steps to report, e.g. 0,1,2,3")
    e.add_argument("--tasks", type=int, default=40, help="held-out tasks drawn from the family")
    e.add_argument("--task", action="append", default=[], metavar="KEY=VALUE", help="one given task instead")
    e.add_argument("--episodes", type=int, help="episodes per task and step (default: the run's)")
    e.add_argument("--random-init", action="store_true", help="also a randomly initialised policy (same steps)")
    e.add_argument("--seed", type=int, default=None, help="seed of the evaluation tasks and episodes")
    e.add_argument("--plot", help="write the adaptation curve as PNG here")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(handler=run_evaluate)

    pl = sub.add_parser("plot", help="the run's learning curves as PNG: return, surrogate, KL, steps/s")
    pl.add_argument("run", metavar="RUN", help="run folder")
    pl.add_argument("--out", help="PNG to write (default RUN/curves.png)")
    pl.set_defaults(handler=run_plot)

    r = sub.add_parser("render", help="one episode as an animated GIF (after --adapt-steps steps on the task)")
    r.add_argument("run", metavar="RUN")
    r.add_argument("--task", action="append", default=[], metavar="KEY=VALUE", help="the task (default: one drawn)")
    r.add_argument("--adapt-steps", type=int, default=0, help="inner steps on the task before the episode")
    r.add_argument("--out", default="clip.gif")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(handler=run_render)

    z = sub.add_parser("zero-shot", help="act on a task described in words, without practising it (oracle runs)")
    z.add_argument("run", metavar="RUN", help="a task-conditioned run (method oracle)")
    z.add_argument("--describe", required=True, metavar="TEXT", help='the task, e.g. "go to the top-left corner"')
    z.add_argument("--episodes", type=int, default=10, help="episodes to measure the return over")
    z.add_argument("--task", action="append", default=[], metavar="KEY=VALUE", help="score on this true task")
    z.add_argument("--encoder", default="hashing-512", help="text encoder: hashing-512, minilm, ...")
    z.add_argument("--seed", type=int, default=0)
    z.add_argument("--out", help="also write one episode as an animated GIF here")
    z.add_argument("--json", action="store_true", help="print one JSON object")
    z.set_defaults(handler=run_zero_shot)

    s = sub.add_parser("serve", help="HTTP service: POST /act with a description and an observation")
    s.add_argument("run", metavar="RUN", help="a task-conditioned run (method oracle)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--encoder", default="hashing-512", help="text encoder: hashing-512, minilm, ...")
    s.set_defaults(handler=run_serve)

    f = sub.add_parser("families", help="the task families and their parameter ranges")
    f.add_argument("--json", action="store_true")
    f.set_defaults(handler=run_families)
    return parser


def run_train(args) -> int:
    from fewshot.rl.config import preset
    from fewshot.rl.train import RLTrainer

    settings = _settings(args.set)
    if args.resume:
        if args.config:
            raise RLError("--resume continues a run with its own settings; drop --config")
        trainer = RLTrainer.resume(args.resume, settings, quiet=args.quiet)
    else:
        if not args.config:
            raise RLError("train needs --config PRESET (or --resume RUN)")
        config = preset(args.config, settings)
        out = Path(args.out) if args.out else Path("runs") / "rl" / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.config}"
        trainer = RLTrainer.create(config, out, quiet=args.quiet, overwrite=args.overwrite)
    result = trainer.run()
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['run']}: {result['iteration']} iterations, final {result['final']}")
    if not result["completed"]:
        print(f"stopped; continue with: fewshot rl train --resume {result['run']}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def run_evaluate(args) -> int:
    import torch

    from fewshot.rl.evaluate import EVAL_SEED, adaptation_curve, held_out_tasks
    from fewshot.rl.policy import GaussianMLPPolicy
    from fewshot.rl.rollouts import Sampler
    from fewshot.rl.tasks import get_family
    from fewshot.rl.train import load_policy

    steps = _steps(args.adapt_steps)
    if args.tasks < 1 or (args.episodes is not None and args.episodes < 1):
        raise RLError("--tasks and --episodes must be >= 1")
    config, meta, policy = load_policy(args.run)
    family = get_family(config.family, **config.family_options)
    seed = EVAL_SEED if args.seed is None else args.seed
    tasks = [family.task(**{k: float(v) for k, v in _settings(args.task).items()})] if args.task else None
    tasks = tasks or held_out_tasks(family, args.tasks, seed)
    episodes = args.episodes or config.episodes
    num_envs = episodes * (len(tasks) if family.batched_natively else min(len(tasks), config.meta_batch))
    sampler = Sampler(family, num_envs, config.vector, config.method == "oracle")
    try:
        rows = {config.method: adaptation_curve(policy, config, sampler, tasks, steps, episodes, seed)}
        if args.random_init:
            sampler.close()
            sampler = Sampler(family, num_envs, config.vector)
            torch.manual_seed(config.seed + 1)
            fresh = GaussianMLPPolicy(
                sampler.obs_dim, sampler.act_dim, config.hidden, config.activation, config.init_std
            )
            rows["random"] = adaptation_curve(fresh, config, sampler, tasks, steps, episodes, seed)
    finally:
        sampler.close()
    out = {"run": str(args.run), "family": config.family, "iteration": meta["iteration"], "methods": rows}
    if args.plot:
        plot_adaptation({k: v["steps"] for k, v in rows.items()}, args.plot)
    if args.json:
        print(json.dumps({**out, "methods": {k: {**v, "per_task": None} for k, v in rows.items()}}))
    else:
        for name, row in rows.items():
            cells = "  ".join(f"{k}: {v['mean']:.2f} ± {v['ci95']:.2f}" for k, v in row["steps"].items())
            print(f"{name:>10}  {cells}")
    return 0


def plot_adaptation(rows: dict[str, dict[str, dict[str, float]]], out: str | Path) -> Path:
    """Mean return (with 95% CI) against inner steps, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, steps in rows.items():
        xs = [int(k) for k in steps]
        ax.errorbar(
            xs, [steps[k]["mean"] for k in steps], yerr=[steps[k]["ci95"] for k in steps], label=name, capsize=3
        )
    ax.set_xticks(sorted({int(k) for steps in rows.values() for k in steps}))
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("mean return")
    ax.legend()
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(out)


def run_plot(args) -> int:
    from fewshot.rl.plots import plot_learning_curves

    print(plot_learning_curves(args.run, args.out))
    return 0


def run_render(args) -> int:
    import os

    if not os.environ.get("DISPLAY"):  # headless: MuJoCo's EGL backend, chosen before MuJoCo is imported
        os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from fewshot.rl.maml import MetaRL
    from fewshot.rl.render import episode_frames, policy_params, write_gif
    from fewshot.rl.rollouts import Sampler
    from fewshot.rl.tasks import get_family
    from fewshot.rl.train import load_policy

    config, _, policy = load_policy(args.run)
    if config.method == "oracle":
        raise RLError("render shows policies that act on observations alone; this run is an oracle")
    family = get_family(config.family, **config.family_options)
    settings = _settings(args.task)
    task = family.task(**settings) if settings else family.sample_tasks(1, torch.Generator().manual_seed(args.seed))[0]
    params = policy_params(policy)
    if args.adapt_steps > 0:
        learner = MetaRL(policy, inner_lr=config.inner_lr, inner_steps=args.adapt_steps, inner_opt=config.inner_opt)
        sampler = Sampler(family, config.episodes, config.vector)
        try:
            inner, _, _ = learner.sample(sampler, [task], config.episodes, torch.Generator().manual_seed(args.seed))
        finally:
            sampler.close()
        params = {k: v[0] for k, v in learner.adapt(params, inner, 1).items()}
    frames, total = episode_frames(family, policy, params, task, args.seed)
    out = write_gif(frames, args.out)
    print(f"{out}: {len(frames)} frames, return {total:.2f}, task {task.to_dict()['params']}")
    return 0


def run_zero_shot(args) -> int:
    from fewshot.rl.zeroshot import Learner

    if args.episodes < 1:
        raise RLError("--episodes must be >= 1")
    learner = Learner.load(args.run, encoder=args.encoder)
    settings = _settings(args.task)
    task = learner.family.task(**{k: float(v) for k, v in settings.items()}) if settings else None
    result = learner.evaluate(args.describe, args.episodes, task, args.seed)
    if args.out:
        from fewshot.rl.render import episode_frames, policy_params, write_gif

        policy = learner.zero_shot(args.describe).policy
        true_task = learner.family.task(**result["task"])
        frames, _ = episode_frames(learner.family, policy, policy_params(policy), true_task, args.seed)
        result["clip"] = str(write_gif(frames, args.out))
    if args.json:
        print(json.dumps(result))
    else:
        params = ", ".join(f"{k} = {v:.3f}" for k, v in result["params"].items())
        print(f"read as: {learner.family.name} task with {params}")
        print(f"understood: {'; '.join(result['understood'])}")
        for key in ("assumed", "ignored"):
            if result[key]:
                print(f"{key}: {'; '.join(result[key])}")
        scored = "the task it was read as" if not settings else f"the given task {result['task']}"
        print(f"return over {args.episodes} episodes on {scored}: {result['return']:.2f} ± {result['return_std']:.2f}")
        if args.out:
            print(f"clip: {result['clip']}")
    return 0


def run_serve(args) -> int:
    from fewshot.rl.service import serve
    from fewshot.rl.zeroshot import Learner

    serve(Learner.load(args.run, encoder=args.encoder), args.host, args.port)
    return 0


def run_families(args) -> int:
    from fewshot.rl.tasks import FAMILIES, get_family

    rows = [get_family(name).describe() for name in FAMILIES.names()]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['family']:>16}  horizon {row['horizon']}  params {row['params']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fewshot rl ...``; returns the exit status."""

    def run() -> int:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        return args.handler(args)

    return one_line_errors("fewshot rl", run, (UsageError, RLError, CheckpointError))


if __name__ == "__main__":
    sys.exit(main())
