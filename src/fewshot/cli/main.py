"""``fewshot`` sub-commands and their one-line error handling."""

from __future__ import annotations

import argparse
import logging
import sys

from fewshot.cli import commands
from fewshot.cli.domains import domain_of
from fewshot.registry import COMMANDS

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def port_number(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fewshot", description="Meta-learning: train, evaluate, predict, serve.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="meta-train a learner (no arguments: ProtoNet on the built-in glyphs)")
    train.add_argument("--config", help="a preset name (see `fewshot list`) or a YAML/TOML file")
    for flag, kind, text in [
        ("--algorithm", str, "algorithm name"),
        ("--dataset", str, "dataset name"),
        ("--data-root", str, "dataset folder"),
        ("--backbone", str, "backbone name"),
        ("--ways", int, "classes per task"),
        ("--shots", int, "support examples per class"),
        ("--queries", int, "query examples per class"),
        ("--meta-batch", int, "tasks per meta-update"),
        ("--steps", int, "meta-updates"),
        ("--lr", float, "outer learning rate"),
        ("--device", str, "cpu, cuda, cuda:N or auto"),
        ("--seed", int, "random seed"),
        ("--out", str, "run folder (default: a new runs/<time>-<algorithm>-<dataset>, linked as runs/latest)"),
        ("--test-episodes", int, "held-out episodes at the end"),
    ]:
        train.add_argument(flag, type=kind, help=text)
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting, e.g. --set algorithm_options.inner_steps=5 (repeatable)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (default runs/latest) with its own settings; flags may only extend it "
        "(--steps, time_limit, --device)",
    )
    train.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    train.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    train.set_defaults(run=commands.train)

    ev = sub.add_parser("evaluate", help="mean accuracy and 95%% CI over held-out episodes")
    ev.add_argument("checkpoint", help="checkpoint folder (or run folder)")
    ev.add_argument("--dataset")
    ev.add_argument("--data-root")
    ev.add_argument("--split", default=None, help="dataset split (default: the run's test split)")
    ev.add_argument("--ways", type=int)
    ev.add_argument("--shots", type=int)
    ev.add_argument("--queries", type=int)
    ev.add_argument("--episodes", type=int, default=600)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="cpu")
    ev.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="algorithm_options.KEY=VALUE",
        help="a test-time algorithm option, e.g. algorithm_options.adapt_steps=10 (repeatable)",
    )
    ev.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ev.set_defaults(run=commands.evaluate)

    pr = sub.add_parser("predict", help="adapt on a support folder, classify a query folder")
    pr.add_argument("checkpoint")
    pr.add_argument("--support", required=True, help="folder with one sub-folder of images per class")
    pr.add_argument("--query", required=True, help="folder of images to classify")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(run=commands.predict)

    sv = sub.add_parser("serve", help="HTTP service: adapt on a support set and predict per request")
    sv.add_argument("checkpoint")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=port_number, default=8000)
    sv.add_argument(
        "--api-key", default=None, help="require this key in the X-API-Key header (default: $FEWSHOT_API_KEY if set)"
    )
    sv.set_defaults(run=commands.serve)

    dl = sub.add_parser("download", help="fetch the Omniglot release zips (MD5-checked) into a folder")
    dl.add_argument("dataset", choices=["omniglot"])
    dl.add_argument("root", help="folder to put the zips in")
    dl.add_argument("--source", help="copy the zips from this local folder instead of downloading")
    dl.set_defaults(run=commands.download)

    ls = sub.add_parser("list", help="algorithms, backbones, datasets and presets")
    ls.set_defaults(run=commands.list_names)

    pl = sub.add_parser("plot", help="learning curves of a run folder as PNG")
    pl.add_argument("run_dir")
    pl.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    pl.set_defaults(run=commands.plot)

    for name in COMMANDS.names():  # application packages' commands, dispatched before parsing (see main)
        sub.add_parser(name, help=f"{name} commands (fewshot {name} --help)", add_help=False)
    return parser


def run_command(name: str, argv: list[str]) -> int:
    """``fewshot NAME ...`` of an application package: its ``main(argv)``, imported only now."""
    try:
        command = COMMANDS.get(name)
    except ValueError as e:  # the package's extra is not installed
        print(f"fewshot {name}: error: {e}; install it with: pip install 'fewshot[{name}]'", file=sys.stderr)
        return EXIT_USAGE
    return command(argv) or 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        return run_command(argv[0], argv[1:])
    domain = domain_of(argv)  # a preset or run of an application package: its own command takes it
    if domain:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        return run_command(domain, argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("fewshot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, OSError) as e:
        if args.verbose:
            raise
        print(f"fewshot {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
