"""``fewshot metaopt train``, ``evaluate`` and ``list``.

Bad input (an unknown optimizee or rule, a setting that does not exist, a checkpoint that is not a
learned optimizer) is one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib import resources
from pathlib import Path

import yaml

from fewshot.commandline import Parser, UsageError, one_line_errors
from fewshot.files import load_yaml


def _yaml(text: str, source: str):
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise UsageError(f"{source}: not valid YAML: {e}") from None


def presets() -> dict[str, Path]:
    folder = resources.files("fewshot.metaopt") / "presets"
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def read_config(name_or_path: str) -> dict:
    """The settings of a preset name or a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        known = presets()
        if name_or_path not in known:
            raise UsageError(f"config {name_or_path!r} is neither a file nor a preset; presets: {', '.join(known)}")
        path = known[name_or_path]
    values = _yaml(path.read_text(), name_or_path)
    if not isinstance(values, dict):
        raise UsageError(f"{name_or_path}: expected a mapping of settings")
    return values


def _assignments(texts: list[str]) -> dict:
    """``key=value`` (YAML values), dotted keys nested: ``rule_options.hidden=10``."""
    out: dict = {}
    for text in texts:
        key, eq, raw = text.partition("=")
        if not eq or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {text!r}")
        value = _yaml(raw, f"--set {key}")
        head, _, option = key.strip().partition(".")
        if option:
            out.setdefault(head, {})[option] = value
        else:
            out[head] = value
    return out


def _merge(values: dict, overrides: dict) -> dict:
    out = dict(values)
    for key, value in overrides.items():
        if key.endswith("_options") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fewshot metaopt", description="Learned optimizers: meta-train, evaluate.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="meta-train a learned optimizer (truncated BPTT)")
    t.add_argument("--config", required=True, help="a preset name (see `fewshot metaopt list`) or a YAML file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting (repeatable)")
    t.add_argument("--out", help="run folder (default runs/metaopt/<time>-<rule>-<optimizee>)")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(run=run_train)

    e = sub.add_parser("evaluate", help="run a learned optimizer on held-out optimizees")
    e.add_argument("run_dir", metavar="RUN", help="a run folder or a learned-optimizer checkpoint folder")
    e.add_argument("--optimizee", required=True, help="an optimizee family (see `fewshot metaopt list`)")
    e.add_argument("--steps", type=int, default=100)
    e.add_argument("--problems", type=int, default=4, help="optimizees drawn from the split")
    e.add_argument("--split", default="test", choices=("train", "val", "test"))
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="optimizee option (repeatable)")
    e.add_argument("--fallback-lr", type=float, help="SGD rate for coordinates with non-finite updates (default 0)")
    e.add_argument(
        "--baseline", action="append", default=[], metavar="NAME=LR", help="also run adam, rmsprop, sgd-momentum, nag"
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(run=run_evaluate)

    sub.add_parser("list", help="presets, rules and optimizee families").set_defaults(run=run_list)
    return parser


def run_train(args) -> int:
    from fewshot.metaopt.train import config_from_dict, meta_train

    values = _merge(read_config(args.config), _assignments(args.set))
    if args.out:
        values["out"] = args.out
    if args.quiet:
        values["quiet"] = True
    config = config_from_dict(values, source=args.config)
    if config.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        config = config_from_dict({**config.to_dict(), "out": f"runs/metaopt/{stamp}-{config.rule}-{config.optimizee}"})
    result = meta_train(config, overwrite=args.overwrite)
    summary = {
        "out": str(result.out),
        "rule": config.rule,
        "optimizee": config.optimizee,
        "best_val": result.best_val,
        "best_step": result.best_step,
        "steps": result.steps,
        "skipped": result.skipped,
        "seconds": round(result.seconds, 2),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{result.out}: best val {result.best_val:.6g} at step {result.best_step} of {result.steps}")
    return 0


def _baselines(texts: list[str]) -> list[tuple[str, float]]:
    from fewshot.metaopt.evaluate import BASELINES

    out = []
    for text in texts:
        name, eq, raw = text.partition("=")
        if name not in BASELINES:
            raise UsageError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")
        try:
            lr = float(raw) if eq else math.nan
        except ValueError:
            lr = math.nan
        if not lr > 0:
            raise UsageError(f"--baseline expects NAME=LR with a positive rate, got {text!r}")
        out.append((name, lr))
    return out


def _summary(losses: list[dict[int, float]], steps: int) -> dict:
    finals = [t[steps] for t in losses]
    return {"initial_loss": _mean([t[0] for t in losses]), "final_loss": _mean(finals), "final_losses": finals}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run_evaluate(args) -> int:
    from fewshot.metaopt.evaluate import BASELINES, optimize
    from fewshot.metaopt.optimizees import optimizee_family
    from fewshot.metaopt.store import load_rule, read_rule_metadata
    from fewshot.metaopt.torch_optim import LearnedOptimizer

    if args.steps < 1 or args.problems < 1:
        raise UsageError("--steps and --problems must be >= 1")
    meta = read_rule_metadata(args.run_dir)
    family = optimizee_family(args.optimizee, args.split, args.seed, **_assignments(args.set))
    baselines = _baselines(args.baseline)
    rule = load_rule(args.run_dir, **({} if args.fallback_lr is None else {"fallback_lr": args.fallback_lr}))
    problems = [family.next() for _ in range(args.problems)]
    record = sorted({0, min(100, args.steps), args.steps})
    runs = [optimize(o, lambda ps: LearnedOptimizer(ps, rule), args.steps, record) for o in problems]
    result = {
        "run": str(args.run_dir),
        "rule": meta["rule"],
        "trained_on": meta.get("training", {}).get("optimizee"),
        "optimizee": args.optimizee,
        "split": args.split,
        "problems": args.problems,
        "steps": args.steps,
        **_summary([r.losses for r in runs], args.steps),
        "nonfinite_updates": sum(r.nonfinite for r in runs),
        "diverged": sum(r.diverged for r in runs),
        "baselines": {},
    }
    for name, lr in baselines:
        done = [optimize(o, BASELINES[name](lr), args.steps, record) for o in problems]
        result["baselines"][f"{name}={lr:g}"] = _summary([r.losses for r in done], args.steps)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{meta['rule']} on {args.problems} {args.split} {args.optimizee}: "
        f"loss {result['initial_loss']:.6g} -> {result['final_loss']:.6g} after {args.steps} steps"
    )
    if result["nonfinite_updates"]:
        print(f"  {result['nonfinite_updates']} non-finite coordinate updates replaced by the fallback")
    for name, values in result["baselines"].items():
        print(f"  {name}: {values['initial_loss']:.6g} -> {values['final_loss']:.6g}")
    return 0


def run_list(args) -> int:
    from fewshot.metaopt.optimizees import OPTIMIZEES
    from fewshot.metaopt.rules import RULES

    print("presets:    " + ", ".join(sorted(presets())))
    print("rules:      " + ", ".join(RULES.names()))
    print("optimizees: " + ", ".join(OPTIMIZEES.names()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fewshot metaopt ...``; returns the exit status."""

    def run() -> int:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        return args.run(args)

    return one_line_errors("fewshot metaopt", run, (ValueError, ImportError))  # CheckpointError is a ValueError
