"""``fewshot molecules train | ensemble | evaluate | predict | serve | presets``.

    fewshot molecules train --config fsmol-protonet [--out RUN] [--steps N] [--set KEY=VALUE ...]
                            [--data-root DIR] [--seed N] [--device cpu|cuda|cuda:N|auto] [--overwrite]
    fewshot molecules train --resume --out RUN [--steps N] [--device DEVICE]
    fewshot molecules ensemble RUN RUN [RUN ...] --out RUN [--overwrite]
    fewshot molecules evaluate RUN [--json] [--support-sizes 16,32,64,128] [--draws N] [--data-root DIR]
                               [--device DEVICE]
    fewshot molecules predict RUN --support support.csv --query query.csv [--json]
    fewshot molecules serve RUN [--host 127.0.0.1] [--port 8000]

A run folder holds ``config.json`` (``"domain": "molecules"`` and the settings), ``checkpoint/``
(the weights that validated best, a core checkpoint), ``last/`` (weights and training state to
resume from) and ``history.json``; an ensemble's folder holds ``config.json`` (its first member's
settings and the members' folders) and ``checkpoint/`` (every member's weights). Bad input (an
unknown preset or setting, a CSV without a SMILES column, an invalid SMILES in a support or query
set) is one line on stderr and exit status 2, before anything is written (so is ``--device cuda``
without CUDA); Ctrl-C saves ``last/`` and exits 130. Checkpoints are stored from host memory: they
load on a CPU whatever device trained them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from fewshot.commandline import EXIT_INTERRUPTED, EXIT_USAGE, Parser, UsageError, one_line_errors

PROG = "fewshot molecules"
RUN_FILES = ("config.json", "checkpoint", "last", "history.json")
logger = logging.getLogger(__name__)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--support-sizes takes integers like 16,32,64,128, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--support-sizes takes integers >= 1, got {text!r}")
    return sizes


DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when there is one)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Few-shot molecular property prediction: assays as tasks, SMILES in.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser("train", help="meta-train a learner on the training assays into a run folder")
    t.add_argument("--config", help="a preset (see `fewshot molecules presets`) or a YAML file")
    t.add_argument("--out", help="run folder (default runs/molecules/<time>-<preset>)")
    t.add_argument("--steps", type=int, help="meta-training steps (with --resume: extend the run to this many)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any setting (repeatable)")
    t.add_argument("--data-root", help="dataset folder, or the CSV of data: assays")
    t.add_argument("--seed", type=int, help="random seed")
    t.add_argument("--device", help=DEVICE_HELP + " (default: the config's device setting, cpu)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out with its own settings")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--json", action="store_true", help="print the result as one JSON object")
    t.add_argument("--quiet", action="store_true", help="no progress log lines")
    t.set_defaults(handler=run_train)

    j = sub.add_parser("ensemble", help="join trained runs into one learner that averages their probabilities")
    j.add_argument("runs", nargs="+", metavar="RUN", help="run folders trained on the same data and featurizer")
    j.add_argument("--out", required=True, help="the ensemble's run folder")
    j.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    j.set_defaults(handler=run_ensemble)

    e = sub.add_parser("evaluate", help="ROC-AUC and delta-AUPRC on the test assays, with 95%% intervals")
    e.add_argument("run", metavar="RUN", help="run folder (or its checkpoint/)")
    e.add_argument("--support-sizes", type=_sizes, help="FS-Mol: support sizes; assay tables: K (K + K shots)")
    e.add_argument("--draws", type=int, help="support draws per task and size (default: the run's, 10)")
    e.add_argument("--data-root", help="dataset folder (default: the run's)")
    e.add_argument("--device", default="cpu", help=DEVICE_HELP + " (default cpu, whatever device trained the run)")
    e.add_argument("--json", action="store_true", help="print JSON (a list when several support sizes)")
    e.set_defaults(handler=run_evaluate)

    p = sub.add_parser("predict", help="probability of activity of each query molecule, from a labelled support")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--support", required=True, help="CSV with a smiles and a label (0/1) column")
    p.add_argument("--query", required=True, help="CSV with a smiles column")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run_predict)

    s = sub.add_parser("serve", help="HTTP service: POST /predict with SMILES in JSON")
    s.add_argument("run", metavar="RUN")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require this key in the X-API-Key header (default: $FEWSHOT_API_KEY, else none)")
    s.set_defaults(handler=run_serve)

    ls = sub.add_parser("presets", help="the presets and what they train")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=run_presets)
    return parser


# ---- run folders -------------------------------------------------------------------------------------------


def run_folder(path: str | Path) -> Path:
    """The run folder of ``path`` (a run folder, or its ``checkpoint/`` or ``last/``)."""
    path = Path(path)
    if not (path / "config.json").is_file() and (path.parent / "config.json").is_file():
        path = path.parent
    if not (path / "config.json").is_file():
        raise UsageError(f"{path}: not a molecules run folder (no config.json)")
    return path


def read_run_config(run: Path):
    from fewshot.molecules.config import DOMAIN, MolConfig

    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{run / 'config.json'}: unreadable ({e})") from None
    if not isinstance(saved, dict) or saved.get("domain") != DOMAIN:
        domain = saved.get("domain") if isinstance(saved, dict) else None
        raise UsageError(f"{run / 'config.json'}: not a molecules run (domain {domain!r})")
    if not isinstance(saved.get("settings"), dict):
        raise UsageError(f"{run / 'config.json'}: no settings")
    return MolConfig.from_dict(saved["settings"]), saved


def _holds_run(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


# ---- data and learners -------------------------------------------------------------------------------------


def load_split(config, split: str, root: str | None = None):
    """The task family of ``split`` (train, valid or test) of the config's data."""
    from fewshot.molecules.assays import load_assays, load_muv, load_sider, load_tox21
    from fewshot.molecules.config import data_root
    from fewshot.molecules.fsmol import load_fs_mol

    path = data_root(config, root)
    options = {"featurizer": config.featurizer, **config.data_options}
    if config.data == "fs-mol":
        return load_fs_mol(path, split, **options)
    loader = {"tox21": load_tox21, "sider": load_sider, "muv": load_muv, "assays": load_assays}[config.data]
    return loader(path, "val" if split == "valid" else split, **options)


def learner_spec(config) -> dict[str, Any]:
    from fewshot.molecules.featurize import dense_width, make_featurizers

    featurizers = make_featurizers(config.featurizer)
    fixed = dense_width(featurizers)
    encoder = dict(config.encoder)
    if encoder["kind"] == "mlp":
        if any(f.kind == "graph" for f in featurizers):
            raise UsageError("an mlp encoder takes fingerprints or descriptors; use encoder.kind=gnn for graphs")
        encoder.setdefault("in_features", fixed)
    else:
        encoder.setdefault("fp_dim", fixed)
    return {"algorithm": config.algorithm, "settings": dict(config.settings), "encoder": encoder,
            "featurizer": config.featurizer}  # fmt: skip


def validator(config, train, root: str | None, device=None):
    """``validate(learner) -> delta-AUPRC`` of the run's validation protocol, or None without one.

    FS-Mol: its valid assays, support 16. Assay tables: their ``val_tasks`` if given, else
    held-out draws (seed 1000) of the training assays, K = ``shots``.
    """
    from fewshot.molecules.evaluate import evaluate_protocol
    from fewshot.molecules.protocols import fsmol_episodes, moleculenet_episodes

    if not config.validate_every:
        return None
    if config.data == "fs-mol":
        valid = load_split(config, "valid", root)

        def episodes():
            return fsmol_episodes(valid, sizes=(16,), draws=config.valid_draws, max_queries=config.valid_queries)
    else:
        family = load_split(config, "valid", root) if config.data_options.get("val_tasks") else train

        def episodes():
            return moleculenet_episodes(family, shots=(config.shots,), draws=config.valid_draws, seed=1000)

    def validate(learner) -> float:
        results = evaluate_protocol(learner, episodes(), device=device)
        if not results:
            return float("nan")
        return next(iter(results.values())).summary("delta_auprc")["mean"]

    return validate


# ---- train -------------------------------------------------------------------------------------------------


def run_train(args) -> int:
    import torch

    from fewshot.files import write_json_atomically
    from fewshot.molecules.config import DOMAIN, load_config, merge, parse_overrides, resolve_device
    from fewshot.molecules.featurize import standardizers
    from fewshot.molecules.methods import build_learner, load_learner_full, save_learner
    from fewshot.molecules.train import MetaTrainer

    overrides = parse_overrides(args.set)
    pairs = (("steps", args.steps), ("seed", args.seed), ("data_root", args.data_root), ("device", args.device))
    for key, value in pairs:
        if value is not None:
            overrides[key] = value
    if args.resume:
        if args.overwrite:
            raise UsageError("--resume continues the run in --out and --overwrite replaces it: give one")
        if not args.out:
            raise UsageError("--resume needs --out RUN, the run to continue")
        out = run_folder(args.out)
        config, saved = read_run_config(out)
        if "members" in saved:
            members = ", ".join(saved["members"])
            raise UsageError(f"{out} is an ensemble, not trained as one; resume its members: {members}")
        allowed = {"steps", "time_limit", "device"}
        if set(overrides) - allowed:
            raise UsageError(f"--resume keeps the run's settings; only {', '.join(sorted(allowed))} may change")
        config = merge(config, overrides)
        name = saved.get("preset", "")
        if not (out / "last").is_dir():
            raise UsageError(f"{out}: no last/ to resume from; train it again with --overwrite")
    else:
        if not args.config:
            raise UsageError("train needs --config PRESET_OR_YAML (or --resume --out RUN)")
        config, name = load_config(args.config, overrides), args.config
        stem = Path(name).stem if Path(name).is_file() else name
        out = Path(args.out) if args.out else Path("runs") / "molecules" / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file, not a run folder")
        if _holds_run(out) and not args.overwrite:
            raise UsageError(f"{out} already holds a run; pass --overwrite to replace it or --resume to continue it")

    device = resolve_device(config.device)  # no CUDA for --device cuda: one error, nothing written
    torch.manual_seed(config.seed)
    train = load_split(config, "train")  # bad data fails here, before anything is written
    if not train.eligible(config.shots + config.queries):
        raise UsageError(
            f"{train.name}: no training assay has {config.shots + config.queries} actives and as many inactives "
            f"({config.shots} shots + {config.queries} queries per class); lower shots or queries"
        )
    validate = validator(config, train, None, device)
    spec = learner_spec(config)
    learner = build_learner(spec).to(device)  # before the optimizer is built over its parameters
    trainer = MetaTrainer(
        learner,
        train,
        shots=config.shots,
        queries=config.queries,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=config.seed,
        device=device,
    )
    fitted = standardizers(train.tasks[0].features)
    if args.resume:
        from fewshot.engine.checkpoint import load_state, read_checkpoint, read_training_state
        from fewshot.molecules.methods import split_standardizers

        _, state = read_checkpoint(out / "last")
        load_state(learner, split_standardizers(state)[0], out / "last")
        best_state = None
        if (out / "checkpoint").is_dir():
            best, _, _ = load_learner_full(out / "checkpoint")
            best_state = best.state_dict()
        trainer.load_state_dict(read_training_state(out / "last"), best_state)
    else:
        if args.overwrite:
            for item in RUN_FILES:
                target = out / item
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        import fewshot

        saved = {"domain": DOMAIN, "preset": name, "settings": config.to_dict(), "fewshot_version": fewshot.__version__}
        write_json_atomically(out / "config.json", saved, indent=2)

    def metrics() -> dict[str, Any]:
        best = trainer.best if validate is not None and math.isfinite(trainer.best) else None
        return {"step": trainer.step, "valid_delta_auprc": best, "train_seconds": round(trainer.seconds, 1),
                "device": str(device)}  # fmt: skip

    def save_last(t: MetaTrainer) -> None:
        save_learner(learner, spec, out / "last", metrics(), fitted, training_state=t.state_dict())
        save_learner(_with(learner, t.best_weights()), spec, out / "checkpoint", metrics(), fitted)
        write_json_atomically(out / "history.json", t.history)

    try:
        completed = trainer.run(
            config.steps,
            validate=validate,
            validate_every=config.validate_every or 1,
            time_limit=config.time_limit,
            log_every=max(1, min(100, config.steps // 10)),
            checkpoint=save_last,
            checkpoint_every=config.save_every,
        )
    except KeyboardInterrupt:
        learner.eval()
        save_last(trainer)
        print(f"{PROG}: interrupted at step {trainer.step}; continue with: "
              f"fewshot molecules train --resume --out {out}", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    learner.eval()
    save_last(trainer)
    result = {"run": str(out), "completed": completed, **metrics()}
    if args.json:
        print(json.dumps(result))
    else:
        best = result["valid_delta_auprc"]
        valid = f", best validation delta-AUPRC {best:.4f}" if best is not None else ""
        print(f"{out}: {trainer.step} steps in {trainer.seconds:.0f} s on {device}{valid}")
    if not completed:
        print(f"stopped by time_limit; continue with: fewshot molecules train --resume --out {out}", file=sys.stderr)
    return 0


def _with(learner, weights):
    """A copy of ``learner`` holding ``weights`` (the trainer's own learner keeps training)."""
    import copy

    twin = copy.deepcopy(learner)
    twin.load_state_dict(weights)
    return twin


SHARED_SETTINGS = ("data", "data_root", "data_options", "featurizer")  # what an ensemble's members must share


def run_ensemble(args) -> int:
    """Join trained runs into one ensemble run (``fewshot.molecules.ensemble``); nothing is trained."""
    import torch

    import fewshot
    from fewshot.files import write_json_atomically
    from fewshot.molecules.config import DOMAIN
    from fewshot.molecules.ensemble import Ensemble
    from fewshot.molecules.methods import save_learner

    if len(args.runs) < 2:
        raise UsageError(f"an ensemble needs at least two runs, got {len(args.runs)}")
    members = [load_run(r) for r in args.runs]  # (run, config, learner, spec, standardizers)
    first = members[0]
    for run, config, _, _, fitted in members[1:]:
        for key in SHARED_SETTINGS:
            if getattr(config, key) != getattr(first[1], key):
                raise UsageError(f"{run} and {first[0]} differ in {key}: an ensemble's members share "
                                 f"{', '.join(SHARED_SETTINGS)}")  # fmt: skip
        same = len(fitted) == len(first[4]) and all(
            torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std) for a, b in zip(fitted, first[4])
        )
        if not same:
            raise UsageError(f"{run} and {first[0]} standardise their descriptors differently")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a run folder")
    if _holds_run(out) and not args.overwrite:
        raise UsageError(f"{out} already holds a run; pass --overwrite to replace it")
    for item in RUN_FILES:
        target = out / item
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    spec = {"algorithm": "ensemble", "featurizer": first[3]["featurizer"], "members": [m[3] for m in members]}
    runs = [str(m[0].resolve()) for m in members]
    save_learner(Ensemble([m[2] for m in members]), spec, out / "checkpoint", {"members": runs}, first[4])
    saved = {"domain": DOMAIN, "preset": "ensemble", "settings": first[1].to_dict(), "members": runs,
             "fewshot_version": fewshot.__version__}  # fmt: skip
    write_json_atomically(out / "config.json", saved, indent=2)  # last: the folder is a run only once complete
    print(f"{out}: ensemble of {len(members)} runs ({', '.join(m[3]['algorithm'] for m in members)})")
    return 0


# ---- evaluate, predict, serve ------------------------------------------------------------------------------


def load_run(path: str | Path):
    """(run folder, config, learner, spec, standardizers) of a trained run."""
    from fewshot.molecules.methods import load_learner_full

    run = run_folder(path)
    config, _ = read_run_config(run)
    if not (run / "checkpoint").is_dir():
        raise UsageError(f"{run}: no checkpoint/ yet (training has not saved any weights)")
    learner, spec, fitted = load_learner_full(run / "checkpoint")
    return run, config, learner, spec, fitted


def evaluate_run(
    path, sizes: list[int] | None = None, draws: int | None = None, root: str | None = None, device: str = "cpu"
) -> list:
    """One ``SizeResult.to_dict()`` per support size on the run's test assays, with its protocol, on ``device``."""
    import torch

    from fewshot.molecules.config import resolve_device
    from fewshot.molecules.evaluate import evaluate_protocol
    from fewshot.molecules.featurize import set_standardizers
    from fewshot.molecules.methods import on_embeddings
    from fewshot.molecules.protocols import fsmol_episodes, moleculenet_episodes

    where = resolve_device(device)
    run, config, learner, _, fitted = load_run(path)  # loaded on the CPU, then moved
    learner = learner.to(where)
    sizes, draws = sizes or config.eval_sizes, config.eval_draws if draws is None else draws
    if draws < 1:
        raise UsageError("--draws must be >= 1")
    family = load_split(config, "test", root)
    for task in family.tasks:
        set_standardizers(task.features, fitted)  # the training statistics saved with the run
    learner, family = on_embeddings(learner, family)  # every molecule encoded once, not once per draw
    torch.set_grad_enabled(True)  # the deep-kernel GP fits its hyperparameters with gradients
    if config.protocol == "fs-mol":
        episodes = fsmol_episodes(family, sizes=sizes, draws=draws)
    else:
        episodes = moleculenet_episodes(family, shots=sizes, draws=draws)
    results = evaluate_protocol(learner, episodes, device=where)
    missing = [s for s in sizes if s not in results]
    if missing:
        raise UsageError(f"no test assay is large enough for support size {', '.join(map(str, missing))}")
    return [{**r.to_dict(), "protocol": config.protocol} for r in results.values()]


def run_evaluate(args) -> int:
    rows = evaluate_run(args.run, args.support_sizes, args.draws, args.data_root, args.device)
    if args.json:
        print(json.dumps(rows[0] if len(rows) == 1 else rows))
        return 0
    unit = "support" if rows[0]["protocol"] == "fs-mol" else "K"
    print(f"{'':>8}{'tasks':>7}{'ROC-AUC':>10}{'+-95%':>8}{'dAUPRC':>9}{'+-95%':>8}")
    for r in rows:
        auc, d = r["roc_auc"], r["delta_auprc"]
        print(f"{unit} {r['support_size']:>4}{r['tasks']:>7}{auc['mean']:>10.4f}{auc['ci95']:>8.4f}"
              f"{d['mean']:>9.4f}{d['ci95']:>8.4f}")  # fmt: skip
    return 0


def predictions(smiles: list[str], probabilities) -> list[dict[str, Any]]:
    return [{"index": i, "smiles": s, "probability": float(p)} for i, (s, p) in enumerate(zip(smiles, probabilities))]


def run_predict(args) -> int:
    from fewshot.molecules.predict import predict_smiles, read_smiles_csv

    support, labels = read_smiles_csv(args.support, labelled=True)
    query, _ = read_smiles_csv(args.query, labelled=False)
    _, _, learner, spec, fitted = load_run(args.run)
    p = predict_smiles(learner, spec["featurizer"], support, labels or [], query, standardizers=fitted)
    rows = predictions(query, p.tolist())
    if args.json:
        print(json.dumps({"predictions": rows}))
    else:
        print("smiles,probability")
        for r in rows:
            print(f"{r['smiles']},{r['probability']:.6f}")
    return 0


def run_serve(args) -> int:
    import uvicorn

    from fewshot.molecules.service import create_app

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a TCP port (1-65535)")
    import os

    app = create_app(args.run, api_key=args.api_key or os.environ.get("FEWSHOT_API_KEY") or None)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def run_presets(args) -> int:
    from fewshot.molecules.config import list_presets, load_config

    rows = []
    for name in list_presets():
        c = load_config(name)
        rows.append({"preset": name, "data": c.data, "algorithm": c.algorithm, "encoder": c.encoder["kind"],
                     "featurizer": c.featurizer, "shots": c.shots, "eval_sizes": c.eval_sizes})  # fmt: skip
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['preset']:<24} {r['data']:<7} {r['algorithm']:<9} {r['encoder']} on {r['featurizer']}, "
                  f"eval {r['eval_sizes']}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fewshot molecules ...``; returns the exit status."""

    def run() -> int:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        root = logging.getLogger()
        if args.command == "train" and not args.quiet and root.level > logging.INFO and not root.handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        return args.handler(args)

    try:  # bad input: UsageError, ConfigError, CheckpointError, InvalidSmilesError, a missing file
        return one_line_errors(PROG, run, (ValueError, OSError))
    except ImportError as e:  # ModuleNotFoundError of an optional dependency
        print(f"{PROG}: error: {e}; install the extras: pip install 'fewshot[molecules,serve]'", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
