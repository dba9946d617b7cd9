"""Training a row's learners from their presets and measuring its cells, each cell written as a record.

A run folder that already holds a finished run with the same recipe is evaluated, not retrained;
one with another recipe is refused rather than resumed into a mix of two.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fewshot.engine.runs import differences, may_change_on_resume
from fewshot.reproduce.records import command, machine, write
from fewshot.reproduce.rows import CELLS, ROWS, SINUSOID, cell_shape, trained_as

BUDGET = frozenset({"steps", "time_limit"})  # a resume may change them; a reproduced run records them


def train(preset: str, out: Path, args, overrides: tuple[str, ...] = ()):
    """A trained Learner for ``preset`` with ``overrides`` then ``args.set`` in ``out`` (reused when a
    finished run with the same settings is there)."""
    from fewshot import Learner
    from fewshot.engine.checkpoint import read_checkpoint
    from fewshot.engine.config import load_config, parse_overrides

    settings = {"data_root": args.data_root, "device": args.device, "out": str(out), "quiet": True}
    settings["test_episodes"] = 0  # no test inside training: run_row evaluates each cell on fixed episodes
    if args.steps:
        settings["steps"] = args.steps
    settings |= parse_overrides([*overrides, *args.set])
    full_steps = load_config(preset).steps
    learner = Learner(config=preset, **settings)
    saved = out / "config.json"
    changed = changed_settings(json.loads(saved.read_text()), learner.config.to_dict()) if saved.exists() else set()
    if changed - {"time_limit"}:  # resuming would mix two recipes
        sys.exit(f"{out} holds a run with other settings ({', '.join(sorted(changed))}): move it or pass --runs")
    if changed or not (out / "result.json").exists():  # new, unfinished, or given more time
        if learner.fit(resume=(out / "last").exists()).interrupted:
            sys.exit(130)
    # the best weights in this preset's learner, so that its test-time settings apply
    learner.algorithm.load_state_dict(read_checkpoint(out / "checkpoint")[1])
    result = json.loads((out / "result.json").read_text())
    wall = result.get("train_seconds") or _logged_seconds(out)
    budget = {"steps": result["step"], "preset_steps": full_steps}  # the steps run: a time limit may stop early
    if "amp" in result:  # runs since amp became auto say whether they trained under bfloat16
        budget["amp"] = result["amp"]
    return learner, budget, wall


def _logged_seconds(out: Path) -> float:
    """Training time of runs older than ``train_seconds``: first to last metrics record."""
    times = [json.loads(line)["time"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return times[-1] - times[0]


def changed_settings(old: dict, new: dict) -> set[str]:
    """The settings in which two configs train differently, by top-level name: what a resume may change
    (where files go, how it logs and how it is tested) does not count, but the budget (``BUDGET``) does."""

    def training(c: dict) -> dict:  # a config without algorithm options has none
        return c | {"algorithm_options": c.get("algorithm_options", {})}

    keys = differences(training(old), training(new))
    return {k.partition(".")[0] for k in keys if k in BUDGET or not may_change_on_resume(k)}


def run_row(name: str, args) -> None:
    row = ROWS[name]
    cells = args.cells or [c for c in CELLS if c in row.published]
    trained: dict[str, tuple] = {}
    for cell in cells:
        source = trained_as(row, cell, args.own)
        out = Path(args.runs) / f"{name}-{source}"
        if source not in trained:
            trained[source] = train(f"omniglot-{row.presets or name}-{source}", out, args, row.settings)
        learner, budget, wall = trained[source]
        ways, shots = cell_shape(cell)
        res = learner.evaluate(ways=ways, shots=shots, queries=15, episodes=args.episodes, seed=0)
        as_preset = {}
        if row.test_options:  # the same weights and episodes under the paper's test
            as_preset = {
                "test_options": row.test_options,
                "preset_test": {"accuracy": 100 * res.mean, "ci95": 100 * res.ci95},
            }
            res = test_with_options(out, row.test_options, learner, ways, shots, args.episodes)
        record = {
            "row": name,
            "cell": cell,
            "title": row.title,
            "accuracy": 100 * res.mean,
            "ci95": 100 * res.ci95,
            "episodes": res.episodes,
            "published": row.published.get(cell),
            "source": row.source,
            "trained_as": source,
            "train_wall_s": wall,
            **budget,
            "machine": machine(),
            "command": command(sys.argv[1:]),
            "note": row.note,
            **as_preset,
        }
        write(args.results, f"{name}-{cell}", record)
        print(f"{row.title} {cell}: {res} (published {row.published.get(cell)})")


def test_with_options(run: Path, options: dict, learner, ways: int, shots: int, episodes: int):
    """The trained weights in ``run`` tested with algorithm ``options`` changed, on ``learner``'s
    test episodes (as ``fewshot evaluate RUN --set algorithm_options.KEY=VALUE``)."""
    from fewshot.engine.evaluate import evaluate
    from fewshot.engine.learners import load_learner

    algorithm, _ = load_learner(run, options)
    data = learner.dataset(learner.config.test_split)
    return evaluate(algorithm, data, ways, shots, 15, episodes=episodes, seed=0)


def run_sinusoid(args) -> None:
    from fewshot.engine.evaluate import evaluate

    for tag, preset in SINUSOID.items():
        if args.cells and tag not in args.cells:
            continue
        learner, budget, wall = train(preset, Path(args.runs) / f"sinusoid-{tag}", args)
        algorithm, k = learner.algorithm, learner.config.shots
        family = learner.dataset("test")
        for steps in (1, 10):
            res = evaluate(
                lambda sx, sy, qx, a=algorithm, s=steps: a.adapt(sx, sy, steps=s)(qx),
                family,
                1,
                k,
                100,
                episodes=args.episodes,
                seed=0,
            )
            record = {
                "row": "sinusoid",
                "cell": f"{tag}-{steps}step",
                "title": "MAML sinusoid",
                "mse": res.mean,
                "ci95": res.ci95,
                "episodes": res.episodes,
                "k": k,
                "adapt_steps": steps,
                "source": "Finn et al. 2017, Figure 3 (curves, no table)",
                "train_wall_s": wall,
                **budget,
                "machine": machine(),
                "command": command(sys.argv[1:]),
            }
            write(args.results, f"sinusoid-{tag}-{steps}step", record)
            print(f"MAML sinusoid K={k}, {steps} step(s): {res}")
