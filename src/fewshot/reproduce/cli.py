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
import os
from pathlib import Path

from fewshot.reproduce.measure import run_row, run_sinusoid
from fewshot.reproduce.rows import CELLS, ROWS, SINUSOID
from fewshot.reproduce.table import table

ROOT = Path(__file__).resolve().parents[3]  # the source checkout: runs/, results/ and docs/ go there


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
