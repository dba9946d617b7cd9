"""Reproduce the published few-shot tables on real Omniglot and sinusoid, one command per row.

    python benchmarks/reproduce.py protonet --data-root ../shared/data/omniglot
    python benchmarks/reproduce.py maml --cells 5w1s --steps 2000 --device cuda
    python benchmarks/reproduce.py metasgd --cells 5w1s --device cuda --set time_limit=420  # 7 min of training
    python benchmarks/reproduce.py relation --cells 20w1s --own  # trained 20-way, not shared
    python benchmarks/reproduce.py sinusoid
    python benchmarks/reproduce.py --table            # results/*.json -> docs/results.md

Each row trains the learners its cells need from the row's presets (a budget below the
preset's says so in the table), evaluates every cell with the field's protocol (Vinyals
split, 28x28, rotations as classes, 1000 fixed test episodes, mean and 95% CI) and writes
``results/<row>-<cell>.json`` with the command, the machine and the wall time. A run
folder that already holds a finished run with the same settings is evaluated, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("5w1s", "5w5s", "20w1s", "20w5s")


@dataclass
class Row:
    title: str
    published: dict[str, float]  # cell -> accuracy %
    source: str
    # cell -> the cell whose trained learner it reuses (metric methods learn any N-way task)
    shared: dict[str, str] = field(default_factory=dict)
    note: str = ""
    presets: str = ""  # the preset family, omniglot-{presets}-{cell} (default: the row's own name)
    settings: tuple[str, ...] = ()  # KEY=VALUE overrides on those presets (a variant of another row)
    # algorithm options of the paper's test that the presets leave out (they would not suit deployment),
    # applied to the trained weights; the cell is also tested as the preset says and both are recorded
    test_options: dict = field(default_factory=dict)


ROWS = {
    "protonet": Row(
        "ProtoNet",
        dict(zip(CELLS, (98.8, 99.7, 96.0, 98.9))),
        "Snell et al. 2017, Table 1",
        shared={"20w1s": "5w1s", "20w5s": "5w5s"},
        note="trained 60-way as in the paper; one learner per shot count serves both ways",
    ),
    "matching": Row(
        "MatchingNet",
        dict(zip(CELLS, (98.1, 98.9, 93.8, 98.5))),
        "Vinyals et al. 2016, Table 1",
        shared={"5w1s": "20w1s", "5w5s": "20w5s"},
        note="no FCE; learned softmax scale on the cosines; one learner per shot count, trained 20-way",
    ),
    "relation": Row(
        "RelationNet",
        dict(zip(CELLS, (99.6, 99.8, 97.6, 99.1))),
        "Sung et al. 2018, Table 1",
        shared={"20w1s": "5w1s", "20w5s": "5w5s"},
        note="tested transductively, as the authors' code (it never leaves train mode: BatchNorm normalises with "
        "the statistics of the task's support set, of its queries and of their pairs); cells marked (learner of "
        "5wNs) reuse the 5-way learner of their shot count; `--own` trains a 20-way cell 20-way, as the paper does",
        test_options={"bn": "batch"},
    ),
    "maml": Row("MAML", dict(zip(CELLS, (98.7, 99.9, 95.8, 98.9))), "Finn et al. 2017, Table 1", note="second order"),
    "fomaml": Row(
        "first-order MAML",
        dict(zip(CELLS, (98.3, 99.2, 89.4, 97.9))),
        "Finn et al. 2017, Table 1",
    ),
    "reptile": Row(
        "Reptile",
        dict(zip(CELLS, (97.68, 99.48, 89.43, 97.12))),
        "Nichol et al. 2018, Table 1",
        # the paper trains on 10-shot tasks whatever the test shots: one learner per way serves both shot counts
        shared={"5w5s": "5w1s", "20w5s": "20w1s"},
        note="transductive (test-time BatchNorm uses the task's statistics); the presets take the paper's settings, "
        "but for full-batch steps at test (the paper's minibatches scored lower here); one learner per way serves "
        "1 and 5 shots",
    ),
    "metasgd": Row("Meta-SGD", dict(zip(CELLS, (99.53, 99.93, 95.93, 98.97))), "Li et al. 2017, Table 1"),
    "anil": Row(
        "ANIL",
        {"20w1s": 96.2, "20w5s": 98.0},
        "Raghu et al. 2020, Table 2 (20-way only)",
        note="only the head adapts, second order through the head",
    ),
}


def zero_head_variant(name: str) -> Row:
    """Row ``name`` with every task's head starting from zeros: a variant, not the paper's recipe."""
    base = ROWS[name]
    return Row(
        f"{base.title}, zero head",
        base.published,
        base.source,
        note=f"not the paper's recipe: the {base.title} presets with every task's head starting from zeros "
        "(`zero_head`, the zeroing trick of Kao et al. 2022)",
        presets=name,
        settings=("algorithm_options.zero_head=true",),
    )


ROWS |= {f"{name}-zero": zero_head_variant(name) for name in ("anil", "fomaml")}
# why a row has no measured cells yet (shown in the table)
NOT_RUN = dict.fromkeys(
    ("maml", "metasgd"), "second order wants a GPU; the 20-way 5-shot jobs did not finish inside the lent GPU time"
)
NOT_REACHED = "not reached in the CPU time so far"
SINUSOID = {"k5": "sinusoid-maml-k5", "k10": "sinusoid-maml-k10"}


def recipe(preset: str) -> list[str]:
    """A gradient-based preset's inner loop in words, read from the preset itself (empty for metric methods)."""
    from fewshot.engine.config import load_config

    config = load_config(preset)
    o = config.algorithm_options
    if "inner_steps" not in o:
        return []
    steps, adam = o["inner_steps"], o.get("inner_optimizer") == "adam"
    rate = "initial lr" if config.algorithm == "metasgd" else "lr"
    words = [f"meta-batch {config.meta_batch}"]
    if config.shots != config.test_shots:
        words.append(f"{config.shots}-shot training tasks")
    words.append(
        f"{steps} inner{' Adam' if adam else ''} step{'s' * (steps != 1)} of {rate} {o['inner_lr']}"
        + (f" on {o['inner_batch']} examples" if o.get("inner_batch") else "")
    )
    words.append(f"{o.get('adapt_steps') or steps} steps at test")
    if o.get("carry_adam"):
        words.append("the inner Adam's moments carried over from task to task (`carry_adam`)")
    return words


def recipes(name: str, row: Row) -> str:
    """The row's presets in words: what all share, then what each group of cells has ("5w1s, 5w5s: ...")."""
    by_cells: dict[tuple[str, ...], list[str]] = {}
    for cell in (c for c in CELLS if c in row.published):
        by_cells.setdefault(tuple(recipe(f"omniglot-{row.presets or name}-{cell}")), []).append(cell)
    if not any(by_cells):
        return ""
    shared = [w for w in next(iter(by_cells)) if all(w in words for words in by_cells)]
    groups = [
        f"{', '.join(cells)}: {', '.join(w for w in words if w not in shared)}" for words, cells in by_cells.items()
    ]
    return "presets: " + "; ".join(([", ".join(shared)] if shared else []) + (groups if len(groups) > 1 else []))


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU (torch {torch.__version__})"
    )


def cell_shape(cell: str) -> tuple[int, int]:
    ways, shots = cell.rstrip("s").split("w")
    return int(ways), int(shots)


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
    changed = _changed(json.loads(saved.read_text()), learner.config.to_dict()) if saved.exists() else set()
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
    return learner, budget, wall


def _logged_seconds(out: Path) -> float:
    """Training time of runs older than ``train_seconds``: first to last metrics record."""
    times = [json.loads(line)["time"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return times[-1] - times[0]


TEST_TIME = {"test_ways", "test_shots", "test_queries", "test_episodes"}
TEST_TIME_OPTIONS = {"adapt_steps", "adapt_batch"}  # algorithm options that only act in adapt


def _changed(a: dict, b: dict) -> set[str]:
    """The settings in which two configs train differently (where files go, how it logs and
    how it is tested do not count)."""
    ignore = {"out", "quiet", "device", "data_root", "tensorboard", "log_every", "keep_freed_memory"} | TEST_TIME

    def training(c: dict) -> dict:
        options = {k: v for k, v in c.get("algorithm_options", {}).items() if k not in TEST_TIME_OPTIONS}
        return {k: v for k, v in c.items() if k not in ignore} | {"algorithm_options": options}

    a, b = training(a), training(b)
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def trained_as(row: Row, cell: str, own: bool) -> str:
    """The cell whose learner evaluates ``cell``: itself with ``own``, else the row's shared learner."""
    return cell if own else row.shared.get(cell, cell)


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


LOCAL_OPTIONS = ("--runs", "--results", "--data-root")


def command(argv: list[str]) -> str:
    """The command that reproduces a record, less the options that only say where files are."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LOCAL_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LOCAL_OPTIONS)):
            kept.append(arg)
    return "python benchmarks/reproduce.py " + shlex.join(kept)


def shown_command(record: dict) -> str:
    """A record's command as the table shows it (records made before ``command`` kept local paths)."""
    return command(shlex.split(record["command"])[2:])


def write(folder: str, name: str, record: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")


def options_text(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


def table(folder: str) -> str:
    records = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    lines = [
        "# Reproduced results",
        "",
        "Generated by `python benchmarks/reproduce.py --table` from `results/*.json`; every number below",
        "was measured by the command in its row. Accuracy in %, mean and 95% confidence interval over the",
        "test episodes (Omniglot: Vinyals split, 28x28, rotations as classes).",
        "",
        "| method | setting | ours | published | diff | budget (steps / preset) | train wall | machine | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    done = {(r["row"], r["cell"]): r for r in records if r["row"] != "sinusoid"}
    for name, row in ROWS.items():
        for cell in (c for c in CELLS if c in row.published):
            r = done.get((name, cell))
            if r is None:
                lines.append(
                    f"| {row.title} | {cell} | not run yet ({NOT_RUN.get(name, NOT_REACHED)}) | "
                    f"{row.published[cell]} | | | | | `python benchmarks/reproduce.py {name} --cells {cell}` |"
                )
                continue
            pub = r["published"]
            diff = f"{r['accuracy'] - pub:+.2f}" if pub is not None else ""
            budget = f"{r['steps']} / {r['preset_steps']}" + (" (reduced)" if r["steps"] < r["preset_steps"] else "")
            shared = f" (learner of {r['trained_as']})" if r["trained_as"] != r["cell"] else ""
            if r.get("test_options", {}) != row.test_options:  # measured before the row took the paper's test
                shared += f" (tested without {options_text(row.test_options)})"
            wall = f"{r['train_wall_s'] / 60:.0f} min" if r.get("train_wall_s") else ""
            lines.append(
                f"| {r['title']} | {r['cell']}{shared} | {r['accuracy']:.2f} +- {r['ci95']:.2f} | "
                f"{pub if pub is not None else '-'} | {diff} | {budget} | {wall} | {r['machine']} | "
                f"`{shown_command(r)}` |"
            )
    notes = []
    for name, row in ROWS.items():
        preset_tests = [
            f"{c} {r['preset_test']['accuracy']:.2f} +- {r['preset_test']['ci95']:.2f}"
            for c in CELLS
            if "preset_test" in (r := done.get((name, c), {}))
        ]
        tested_as_preset = (
            f"the presets' own test, without {options_text(row.test_options)}: {', '.join(preset_tests)}"
            if preset_tests
            else ""
        )
        text = "; ".join(filter(None, (row.note, tested_as_preset, recipes(name, row))))
        if text:
            notes.append(f"- {row.title}: {text}.")
    notes.append(
        "- Network: ProtoNet, MatchingNet and RelationNet use the maxpool Conv4 of their papers; the gradient-based "
        "rows use the stride-2 Conv4 of MAML's and Reptile's Omniglot experiments (preset `omniglot-strided`). "
        "Records measured before their presets switched to it say `downsample=maxpool` in their command; a record's "
        "`--set` says wherever its run differed from the preset."
    )
    notes.append(
        "- Data: the presets train on the Vinyals split's 1,200 training characters (its train and val parts, "
        "4,800 classes), as the papers did, and keep the final weights; records measured before say "
        "`train_split=train` (1,028 characters) and `val_split=val` in their command: those runs kept the weights "
        "of their best validation on the 172 others."
    )
    lines += ["", "Notes on the rows:", "", *notes]
    sin = [r for r in records if r["row"] == "sinusoid"]
    if sin:
        lines += [
            "",
            "## Sinusoid regression (MAML)",
            "",
            "MSE on 100 query points per task after adapting on K support points; the MAML paper reports",
            "these as curves (Figure 3), not as a table.",
            "",
            "| K | adapt steps | MSE (ours) | budget (steps / preset) | train wall | machine | command |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sorted(sin, key=lambda r: (r["k"], r["adapt_steps"])):
            wall = f"{r['train_wall_s'] / 60:.0f} min" if r.get("train_wall_s") else ""
            lines.append(
                f"| {r['k']} | {r['adapt_steps']} | {r['mse']:.3f} +- {r['ci95']:.3f} | "
                f"{r['steps']} / {r['preset_steps']} | {wall} | {r['machine']} | "
                f"`{shown_command(r)}` |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("row", nargs="?", choices=[*ROWS, "sinusoid"])
    ap.add_argument("--cells", nargs="*", help=f"subset of {', '.join(CELLS)} (sinusoid: k5, k10)")
    ap.add_argument(
        "--data-root", default=os.environ.get("FEWSHOT_OMNIGLOT", str(ROOT.parent / "shared/data/omniglot"))
    )
    ap.add_argument("--steps", type=int, help="meta-training budget (default: the preset's)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset setting, e.g. step_size=1500"
    )
    ap.add_argument("--own", action="store_true", help="train every cell on its own preset instead of a shared learner")
    ap.add_argument("--episodes", type=int, default=1000, help="test episodes per cell")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "reproduce"), help="where run folders go")
    ap.add_argument("--results", default=str(ROOT / "results"), help="where the per-cell JSON records go")
    ap.add_argument("--table", action="store_true", help="write docs/results.md from the records")
    args = ap.parse_args()
    known = SINUSOID if args.row == "sinusoid" else CELLS if args.row else ()
    if unknown := [c for c in args.cells or () if c not in known]:
        ap.error(f"{args.row} has no cell {', '.join(unknown)}; its cells: {', '.join(known)}")
    if args.row in ROWS and not Path(args.data_root).is_dir():
        ap.error(f"Omniglot folder not found: {args.data_root} (pass --data-root or set FEWSHOT_OMNIGLOT)")
    if args.row == "sinusoid":
        run_sinusoid(args)
    elif args.row:
        run_row(args.row, args)
    if args.table or not args.row:
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "results.md").write_text(table(args.results))
        print(f"wrote {ROOT / 'docs' / 'results.md'}")


if __name__ == "__main__":
    main()
