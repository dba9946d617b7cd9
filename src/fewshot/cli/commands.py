"""What each ``fewshot`` sub-command does; ``main`` turns their errors into one line each."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from fewshot.engine.config import list_presets, merge, parse_overrides, read_settings

TRAIN_FLAGS = (
    "algorithm",
    "dataset",
    "data_root",
    "backbone",
    "ways",
    "shots",
    "queries",
    "meta_batch",
    "steps",
    "lr",
    "device",
    "seed",
    "out",
    "test_episodes",
)


def train(args) -> int:
    from fewshot.api import Learner

    overrides = {k: getattr(args, k) for k in TRAIN_FLAGS} | parse_overrides(args.set)
    if args.quiet:
        overrides["quiet"] = True
    if args.resume:
        if args.overwrite:
            raise ValueError("--resume continues the run in --out and --overwrite replaces it: give one")
        given = merge(read_settings(args.config), overrides) if args.config else overrides
        learner = Learner.resume(given.pop("out"), **given)
    else:
        learner = Learner(config=args.config, **overrides)
    result = learner.fit(resume=args.resume, overwrite=args.overwrite)
    if not result.writer:  # torchrun: rank 0 alone reports
        return 130 if result.interrupted else 0
    if result.finished_before:
        c = learner.config
        print(
            f"{result.run_dir}: finished at step {result.step} of {c.steps}; nothing to do and nothing changed "
            f"(--steps N above {result.step}, or a longer --set time_limit=S, trains it further)"
        )
        return 0
    from fewshot.engine.plots import plot_run
    from fewshot.engine.tracking import METRICS, read_metrics

    logged = (result.run_dir / METRICS).exists() and any(r["split"] == "train" for r in read_metrics(result.run_dir))
    curves = plot_run(result.run_dir) if logged else None  # a Ctrl-C before the first record: nothing to plot
    print(f"run folder: {result.run_dir}" + (f" (curves: {curves.name})" if curves else ""))
    if learner.config.steps == 0:
        print("steps=0: nothing was trained; the initial learner was saved and tested")
    if result.interrupted:
        print(f"interrupted at step {result.step}; resume with: fewshot train --resume --out {result.run_dir}")
        return 130
    if result.test is not None:
        w, k, _ = learner.config.eval_shape
        print(f"held-out {w}-way {k}-shot {learner.config.dataset} ({learner.config.test_split}): {result.test}")
    return 0


def _eval_dataset(args, stored):
    """The dataset ``evaluate`` runs on: the flags, else the training run's test split."""
    from fewshot.data.loading import get_dataset

    config, preprocessing = stored.config, stored.spec.preprocessing or {}
    trained_on = config.dataset if config else None
    name = args.dataset or trained_on
    if name is None:
        raise ValueError(f"{stored.path}: records no training dataset; pass --dataset and --data-root")
    root = args.data_root or (config.data_root if name == trained_on else None)
    if name == trained_on:
        options = dict(config.dataset_options)
    else:  # another dataset: feed it at the learner's resolution
        options = {"image_size": preprocessing["image_size"]} if "image_size" in preprocessing else {}
        if name == "image-folder":
            options["channels"] = preprocessing["channels"]
    split = args.split or (config.test_split if config else "test")
    return name, get_dataset(name, root=root, split=split, **options)


def evaluate(args) -> int:
    from fewshot.engine.config import parse_overrides
    from fewshot.engine.devices import resolve_device
    from fewshot.engine.evaluate import evaluate as run_protocol
    from fewshot.engine.evaluate import evaluate_episodes
    from fewshot.engine.learners import load_learner

    overrides = parse_overrides(args.set)
    if set(overrides) - {"algorithm_options"}:
        raise ValueError(f"evaluate --set takes algorithm_options.KEY=VALUE only, got {', '.join(args.set)}")
    options = overrides.get("algorithm_options", {})
    algorithm, stored = load_learner(args.checkpoint, options)
    algorithm.to(resolve_device(args.device))
    name, data = _eval_dataset(args, stored)
    if name == "omniglot-runs":  # fixed one-shot runs: no sampling, no seed
        episodes = [e.to(args.device) for e in data.episodes()]
        ways = episodes[0].ways
        result = evaluate_episodes(algorithm, episodes, ways=ways, shots=1, queries=1)
        out = {
            "accuracy": result.mean,
            "ci95": result.ci95,
            "episodes": result.episodes,
            "ways": ways,
            "shots": 1,
            "runs": len(data),
            "error": 1 - result.mean,
        }
    else:
        trained = stored.config.eval_shape if stored.config else (stored.spec.ways, 1, 15)
        ways, shots, queries = (
            given or default for given, default in zip((args.ways, args.shots, args.queries), trained)
        )
        result = run_protocol(
            algorithm, data, ways, shots, queries, episodes=args.episodes, seed=args.seed, device=args.device
        )
        out = {
            result.metric: result.mean,
            "ci95": result.ci95,
            "episodes": result.episodes,
            "ways": ways,
            "shots": shots,
            "queries": queries,
        }
    out.update(dataset=name, seed=args.seed, checkpoint=str(args.checkpoint))
    if options:
        out["options"] = options
    if args.json:
        print(json.dumps(out))
    elif name == "omniglot-runs":
        print(f"{name}: {result} over {out['runs']} runs; error rate {100 * out['error']:.2f}%")
    else:
        print(f"{name} {out['ways']}-way {out['shots']}-shot: {result}")
    return 0


def _image_files(folder: Path) -> list[Path]:
    from fewshot.data.images import is_hidden

    return sorted(p for p in folder.iterdir() if p.is_file() and not is_hidden(p.name))


def predict(args) -> int:
    from fewshot.deploy import Deployment

    support_dir, query_dir = Path(args.support), Path(args.query)
    for folder in (support_dir, query_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
    deployment = Deployment.load(args.checkpoint)
    load = lambda p: deployment.decode(p.read_bytes(), str(p))  # noqa: E731
    support, labels = [], []
    for class_dir in sorted(p for p in support_dir.iterdir() if p.is_dir()):
        files = _image_files(class_dir)
        if not files:
            raise ValueError(f"{class_dir}: empty class folder")
        support += [load(p) for p in files]
        labels += [class_dir.name] * len(files)
    if not support:
        raise ValueError(f"{support_dir}: expected one sub-folder of images per class, found none")
    queries = _image_files(query_dir)
    if not queries:
        raise ValueError(f"{query_dir}: no query images")
    prediction = deployment.predict(support, labels, [load(p) for p in queries])
    rows = [
        {"file": str(p), "class": c, "probability": round(prob, 6)} for p, (c, prob) in zip(queries, prediction.best())
    ]
    if args.json:
        print(json.dumps({"classes": prediction.classes, "predictions": rows}))
    else:
        width = max(len(str(r["file"])) for r in rows)
        for r in rows:
            print(f"{r['file']:<{width}}  {r['class']}  {r['probability']:.3f}")
    return 0


def serve(args) -> int:
    import os

    try:
        from fewshot.serve import run_server
    except ImportError as e:
        raise ValueError(f"the service needs the serve extra: pip install 'fewshot[serve]' ({e})") from None
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as e:
            raise OSError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    run_server(
        args.checkpoint, host=args.host, port=args.port, api_key=args.api_key or os.environ.get("FEWSHOT_API_KEY")
    )
    return 0


def download(args) -> int:
    from fewshot.data.download import download_omniglot

    root = download_omniglot(args.root, source=args.source)
    print(f"omniglot is in {root}; train with: fewshot train --config omniglot-protonet-5w1s --data-root {root}")
    return 0


def list_names(args) -> int:
    """Every registered name with the first line of its docstring, then the presets."""
    from fewshot.cli.domains import application_presets
    from fewshot.registry import ALGORITHMS, BACKBONES, DATASETS, INNER_OPTIMIZERS

    for registry in (ALGORITHMS, BACKBONES, DATASETS, INNER_OPTIMIZERS):
        print(f"{registry.kind}s:")
        names = registry.names()
        width = max(map(len, names))
        for name in names:
            try:
                summary = registry.summary(name)
            except ValueError as e:  # an extra not installed, or a broken plugin: say why, list the rest
                summary = f"(cannot be loaded: {e.__cause__ or e})"
            print(f"  {name:<{width}}  {summary}")
    print(f"presets: {', '.join(list_presets())}")
    others = application_presets()
    if others:
        print(f"presets of application packages: {', '.join(sorted(others))}")
    return 0


def plot(args) -> int:
    from fewshot.engine.plots import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0
