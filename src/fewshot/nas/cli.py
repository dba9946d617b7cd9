"""``fewshot nas search`` and ``fewshot nas compare``.

Bad input (an unknown space or strategy, missing columns, a budget larger than the space, ...)
is one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fewshot.commandline import EXIT_INTERRUPTED, Parser, UsageError, one_line_errors, parse_settings
from fewshot.nas.errors import NASError

ONE_SHOT = ("darts",)  # strategies that train a supernet instead of querying architectures


def _settings(pairs: list[str]) -> dict:
    return parse_settings(pairs, NASError)


def _add_space_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", required=True, help="nas-bench-macro, darts, or a .csv/.json table")
    p.add_argument("--arch-column", help="table column holding the architecture strings (default: arch)")
    p.add_argument("--metric", help="table column the search maximises (several runs: one drawn per query)")
    p.add_argument("--report-metric", help="table column reported for the chosen architecture (default: --metric)")
    p.add_argument("--mode", choices=("max", "min"), default="max", help="maximise (default) or minimise the metric")


def build_parser() -> argparse.ArgumentParser:
    from fewshot.nas.strategies import STRATEGIES

    names = ", ".join([*STRATEGIES, *ONE_SHOT])
    parser = Parser(prog="fewshot nas", description="Neural architecture search on tabular benchmarks and cells.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("search", help="one search: print the best architecture, its metric and regret")
    _add_space_arguments(s)
    s.add_argument("--strategy", required=True, help=f"one of: {names}")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="strategy setting (repeatable)")
    s.add_argument("--budget", type=int, required=True, help="architectures to evaluate")
    s.add_argument("--time-budget", type=float, help="stop after this many seconds of wall time")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="folder for state.json (resumable), history.json and result.json")
    s.add_argument("--resume", action="store_true", help="continue the search whose state is in --out")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s.add_argument(
        "--executor", choices=("serial", "processes", "ray"), help="evaluate batches of proposals in parallel"
    )
    s.add_argument("--workers", type=int, default=2, help="local processes of --executor processes")
    s.add_argument("--batch-size", type=int, help="proposals evaluated together (default: --workers)")
    s.add_argument("--ray-address", help="Ray cluster address for --executor ray (default: a local cluster)")
    darts = s.add_argument_group("the darts space (few-shot backbone of ProtoNet, searched on episodes)")
    darts.add_argument("--dataset", default="glyphs", help="dataset name (default glyphs: built in, no download)")
    darts.add_argument("--data-root", help="dataset folder")
    darts.add_argument("--ways", type=int, default=5)
    darts.add_argument("--shots", type=int, default=1)
    darts.add_argument("--queries", type=int, default=5)
    darts.add_argument("--device", default="cpu")
    darts.add_argument("--learner", choices=("protonet", "fomaml"), default="protonet", help="whose loss DARTS uses")
    darts.add_argument(
        "--space-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="setting of the darts problem: channels, layers, nodes, train_steps, eval_episodes, ...",
    )
    s.set_defaults(run=run_search)

    c = sub.add_parser("compare", help="several strategies over many seeds: regret table and plots")
    _add_space_arguments(c)
    c.add_argument("--strategies", nargs="+", default=list(STRATEGIES), metavar="NAME", help=f"of: {names}")
    c.add_argument("--budget", type=int, required=True, help="queries per search")
    c.add_argument("--seeds", type=int, default=100, help="searches per strategy (seeds first-seed, first-seed+1, ...)")
    c.add_argument("--first-seed", type=int, default=0)
    c.add_argument("--checkpoints", default="50,100,300", help="queries at which the table reports regret")
    c.add_argument("--out", help="folder for compare.json and compare.png")
    c.add_argument("--json", action="store_true", help="print one JSON object (the table rows)")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(run=run_compare)
    return parser


def _problem(args):
    from fewshot.nas.benchmarks import get_benchmark

    if args.space == "darts":
        raise NASError("the darts space is searched by `fewshot nas search --space darts`, not compared over seeds")
    return get_benchmark(args.space, args.arch_column, args.metric, args.report_metric, args.mode)


def _episodes(args):
    from fewshot.nas.learner_search import EpisodeSettings

    return EpisodeSettings(
        dataset=args.dataset,
        data_root=args.data_root,
        ways=args.ways,
        shots=args.shots,
        queries=args.queries,
        device=args.device,
    )


def _darts_problem(args):
    import inspect

    from fewshot.nas.learner_search import FewShotBackboneProblem
    from fewshot.nas.spaces.darts_cells import DartsCellSpace

    settings = _settings(args.space_set)
    nodes = int(settings.pop("nodes", 3))
    valid = set(inspect.signature(FewShotBackboneProblem).parameters) - {"episodes", "space"}
    if set(settings) - valid:
        raise NASError(
            f"--space-set takes nodes, {', '.join(sorted(valid))}; unknown: {', '.join(sorted(set(settings) - valid))}"
        )
    return FewShotBackboneProblem(_episodes(args), DartsCellSpace(nodes=nodes), **settings)


def _check_strategy(name: str, space: str | None = None) -> None:
    from fewshot.nas.strategies import STRATEGIES

    if name in ONE_SHOT and space != "darts":
        raise NASError(f"{name} trains a supernet and needs a differentiable space (darts), not a table")
    if name not in STRATEGIES and name not in ONE_SHOT:
        raise NASError(f"unknown strategy {name!r}; valid: {', '.join([*STRATEGIES, *ONE_SHOT])}")


def _progress(budget: int):
    step = max(1, budget // 10)

    def report(record: dict) -> None:
        if record["query"] % step == 0 or record["query"] == budget:
            regret = "" if record["regret"] is None else f"  regret {record['regret']:.4g}"
            print(
                f"query {record['query']}/{budget}  best {record['best']}  {record['best_report']:.6g}{regret}",
                file=sys.stderr,
            )

    return report


def _executor(args):
    from fewshot.nas.parallel import make_executor

    if args.executor is None:
        return None, 1
    if args.executor == "processes":
        executor = make_executor("processes", workers=args.workers)
    elif args.executor == "ray":
        executor = make_executor("ray", address=args.ray_address)
    else:
        executor = make_executor("serial")
    batch = args.batch_size or (args.workers if args.executor == "processes" else 1)
    if batch < 1:
        raise NASError(f"--batch-size must be at least 1, got {batch}")
    return executor, batch


def _darts_settings(learner: str) -> set[str]:
    import inspect

    from fewshot.nas.darts.search import DartsSearch
    from fewshot.nas.learner_search import darts_fomaml, darts_protonet

    search = darts_fomaml if learner == "fomaml" else darts_protonet
    names = set(inspect.signature(search).parameters) | set(inspect.signature(DartsSearch).parameters)
    return names - {
        "episodes",
        "epochs",
        "steps_per_epoch",
        "seed",
        "progress",
        "darts_options",
        "model",
        "supernet",
        "loss_fn",
    }


def run_darts(args) -> int:
    """DARTS on ProtoNet episodes: ``--budget`` supernet steps; prints and saves the genotype."""
    from fewshot.files import write_json_atomically
    from fewshot.nas.darts.genotype import to_json, to_string
    from fewshot.nas.learner_search import darts_fomaml, darts_protonet
    from fewshot.nas.plots import plot_alphas

    settings = _settings(args.set)
    steps_per_epoch = int(settings.pop("steps_per_epoch", min(50, args.budget)))
    valid = _darts_settings(args.learner)
    if set(settings) - valid:
        raise NASError(
            f"darts takes the settings {', '.join(sorted(valid | {'steps_per_epoch'}))}; "
            f"unknown: {', '.join(sorted(set(settings) - valid))}"
        )
    if args.budget < 1 or steps_per_epoch < 1:
        raise NASError("--budget (supernet steps) and steps_per_epoch must be at least 1")
    out = Path(args.out) if args.out else None
    if out and (out / "genotype.json").exists():
        raise NASError(f"{out} already holds a DARTS result (genotype.json): choose another --out")
    episodes = _episodes(args)
    try:
        episodes.load(episodes.train_split), episodes.load(episodes.val_split)
    except (ValueError, OSError) as e:
        raise NASError(f"dataset {args.dataset!r}: {e}") from None

    def progress(record):
        if not (args.quiet or args.json):
            print(
                f"epoch {record['epoch']}  train loss {record['train_loss']:.4f}  skips {record['skips']}",
                file=sys.stderr,
            )

    result = (darts_fomaml if args.learner == "fomaml" else darts_protonet)(
        episodes,
        epochs=max(1, args.budget // steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
        seed=args.seed,
        progress=progress,
        **settings,
    )
    summary = {
        "best": to_string(result.genotype),
        "metric": None,
        "regret": None,
        "queries": len(result.epochs) * steps_per_epoch,
        **result.summary(),
    }
    if out:
        write_json_atomically(out / "history.json", result.epochs)
        write_json_atomically(out / "genotype.json", {"genotype": to_json(result.genotype), **summary})
        plot_alphas(result.epochs, out / "alphas.png")
    print(
        json.dumps(summary)
        if args.json
        else f"genotype {summary['best']}  ({summary['queries']} steps, "
        f"{result.seconds:.1f} s{', stopped early' if result.stopped_early else ''})"
    )
    return 0


def run_search(args) -> int:
    from fewshot.files import write_json_atomically
    from fewshot.nas.runner import Search
    from fewshot.nas.strategies import make_strategy

    _check_strategy(args.strategy, args.space)
    if args.strategy in ONE_SHOT:
        return run_darts(args)
    problem = _darts_problem(args) if args.space == "darts" else _problem(args)
    strategy = make_strategy(args.strategy, problem.space, **_settings(args.set))
    executor, batch_size = _executor(args)
    out = Path(args.out) if args.out else None
    state_path = out / "state.json" if out else None
    if args.resume and not (state_path and state_path.exists()):
        raise NASError(f"--resume needs a search state in --out ({state_path or 'no --out given'} not found)")
    if state_path and state_path.exists() and not args.resume:
        raise NASError(f"{out} already holds a search (state.json): pass --resume, or choose another --out")
    if out and out.exists() and not out.is_dir():
        raise NASError(f"--out {out} is a file, not a folder")
    progress = None if (args.quiet or args.json) else _progress(args.budget)
    runner = Search(
        problem,
        strategy,
        args.budget,
        args.seed,
        time_budget=args.time_budget,
        state_path=state_path,
        progress=progress,
    )
    try:
        result = runner.run()
    except KeyboardInterrupt:
        if state_path:
            print(
                f"interrupted after {len(runner.history)} queries; continue with --resume --out {out}", file=sys.stderr
            )
        return EXIT_INTERRUPTED
    describe = getattr(problem, "describe", None)
    summary = {**result.summary(), "space": describe() if describe else {"name": problem.name}}
    if out:
        write_json_atomically(out / "history.json", result.history)
        write_json_atomically(out / "result.json", summary)
    if args.json:
        print(json.dumps(summary))
    else:
        regret = "unknown" if result.regret is None else f"{result.regret:.4f}"
        print(
            f"best {result.best}  {getattr(problem, 'report_name', 'metric')} {result.metric:.4f} "
            f"(seen {result.observed:.4f})  "
            f"regret {regret}  queries {result.queries}  ({problem.name}, {strategy.name}, seed {args.seed})"
        )
    return 0


def run_compare(args) -> int:
    from fewshot.files import write_json_atomically
    from fewshot.nas.compare import compare, format_table, regret_rows
    from fewshot.nas.plots import plot_compare

    for name in args.strategies:
        _check_strategy(name)
    try:
        checkpoints = [int(q) for q in args.checkpoints.split(",") if q.strip()]
    except ValueError:
        raise NASError(f"--checkpoints must be comma-separated query counts, got {args.checkpoints!r}") from None
    if args.seeds < 1:
        raise NASError(f"--seeds must be at least 1, got {args.seeds}")
    problem = _problem(args)
    size = problem.space.size
    if args.budget < 1 or (size is not None and args.budget > size):
        raise NASError(f"budget {args.budget} must be between 1 and the size of the space ({size} architectures)")
    out = Path(args.out) if args.out else None
    if out and out.exists() and not out.is_dir():
        raise NASError(f"--out {out} is a file, not a folder")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    result = compare(problem, {name: {} for name in args.strategies}, args.budget, seeds)
    rows = regret_rows(result, checkpoints)
    if out:
        write_json_atomically(out / "compare.json", result, indent=None)
        plot_compare(result, out / "compare.png")
    if args.json:
        print(
            json.dumps(
                {
                    "problem": problem.name,
                    "optimum": problem.optimum,
                    "budget": args.budget,
                    "seeds": len(seeds),
                    "rows": [{str(k): v for k, v in r.items()} for r in rows],
                }
            )
        )
    else:
        print(f"{problem.name}: mean regret over {len(seeds)} seeds (95% CI), budget {args.budget}")
        print(format_table(result, checkpoints))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fewshot nas ...``; returns the exit status."""

    def run() -> int:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        return args.run(args)

    return one_line_errors("fewshot nas", run, (UsageError, NASError))
