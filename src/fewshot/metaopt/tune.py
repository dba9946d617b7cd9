"""``fewshot tune``: hyperparameter search over training settings with Optuna, on a real database.

    fewshot tune --config PRESET --space SPACE.yaml --trials 40 --jobs 2 --out runs/tune
        [--storage sqlite:///runs/tune/study.db] [--study NAME] [--sampler tpe|random|cmaes]
        [--pruner median|hyperband|none] [--set KEY=VALUE ...] [--seed 0]

A trial trains the preset with the settings drawn from the space (``fewshot train``'s trainer, no
test at the end) and returns its best validation score (accuracy, maximised; MSE for regression
task families, minimised). The trainer's validations are reported to the pruner as they happen, so
that median or Hyperband pruning stops hopeless trials early.

The study lives in a database: an SQLite file (``OUT/study.db``) by default, or any SQLAlchemy URL
(PostgreSQL, MySQL) that several machines share. ``--trials N`` is the number of finished (complete
or pruned) trials the study should hold, counted over every worker and every earlier run: running
the same command again after a kill finishes the study. ``--jobs J`` runs J worker processes on this
machine; other machines join with the same ``--storage`` and ``--study``. Workers keep a heartbeat:
a trial whose worker died is failed and queued again with the same settings once ``--grace``
seconds pass without a beat.

The space file maps settings (``TrainConfig`` fields, ``*_options.NAME`` for options) to ranges::

    lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    algorithm_options.inner_steps: {type: int, low: 1, high: 5}
    optimizer: [adam, sgd]                       # a list: a categorical choice

Written to OUT: ``best.yaml`` (the preset with the best trial's settings: ``fewshot train --config
OUT/best.yaml`` reproduces it), ``study.json`` (every trial), ``history.png`` and ``importance.png``,
and ``trials/N/`` (each trial's run folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from fewshot.commandline import EXIT_USAGE, Parser, UsageError

Direction = Literal["minimize", "maximize"]
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
SPEC_KEYS = {"type", "low", "high", "log", "step", "choices"}
POLL = 1.0  # seconds between checks of a study whose last trials run elsewhere
log = logging.getLogger("fewshot.metaopt")


class TuneError(ValueError):
    """Bad input to ``fewshot tune``: one line, exit status 2."""


# -- the search space ---------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str  # a TrainConfig field, or FIELD.OPTION for a *_options mapping
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list:
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


def _number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)


def parse_param(name: str, spec: Any, source: str) -> Param:
    """One entry of a space file, with one clear error for an impossible range."""
    where = f"{source}: {name}"
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict):
        raise TuneError(f"{where}: expected a list of choices or a mapping with type, low, high, got {spec!r}")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise TuneError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(SPEC_KEYS))}")
    kind = spec.get("type", "categorical" if "choices" in spec else "float")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TuneError(f"{where}: choices must be a non-empty list")
        if set(spec) - {"type", "choices"}:
            raise TuneError(f"{where}: a categorical takes only choices")
        return Param(name, kind, choices=tuple(choices))
    if kind not in ("float", "int"):
        raise TuneError(f"{where}: type must be float, int or categorical, got {kind!r}")
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    log, step = spec.get("log", False), spec.get("step")
    integer = kind == "int"
    if not (_number(low, integer) and _number(high, integer)):
        raise TuneError(f"{where}: low and high must be {'integers' if integer else 'numbers'}, got {low!r}, {high!r}")
    if not low < high:
        raise TuneError(f"{where}: impossible range, low {low} is not below high {high}")
    if not isinstance(log, bool):
        raise TuneError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise TuneError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (not _number(step, integer) or step <= 0 or step > high - low or log):
        raise TuneError(f"{where}: step must be positive, at most high - low, and not with log")
    return Param(name, kind, low, high, log, step)


def read_space(path: str) -> list[Param]:
    """The parameters of a space file (YAML), checked."""
    try:
        values = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise TuneError(f"space file {path} not found") from None
    except yaml.YAMLError as e:
        raise TuneError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(values, dict) or not values:
        raise TuneError(f"{path}: expected a mapping of settings to ranges")
    return [parse_param(str(k), v, path) for k, v in values.items()]


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """``{"algorithm_options.inner_lr": 0.1}`` -> ``{"algorithm_options": {"inner_lr": 0.1}}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        head, _, option = key.partition(".")
        if option:
            out.setdefault(head, {})[option] = value
        else:
            out[key] = value
    return out


def check_space(space: list[Param], base: dict) -> None:
    """Every parameter names a setting, and every value it can take makes a valid config."""
    from fewshot.engine.config import TrainConfig, from_dict, merge
    from fewshot.registry import ALGORITHMS, BACKBONES, DATASETS, accepted_options

    fields = set(TrainConfig.__dataclass_fields__)
    config = from_dict(base)
    owners = {"algorithm_options": (ALGORITHMS, config.algorithm), "backbone_options": (BACKBONES, config.backbone)}
    owners["dataset_options"] = (DATASETS, config.dataset)
    for p in space:
        head, _, option = p.name.partition(".")
        if head not in fields or (option and head not in owners) or (not option and head in owners):
            raise TuneError(
                f"unknown setting {p.name!r} in the space; settings are TrainConfig fields, or "
                f"{', '.join(owners)} entries as FIELD.NAME"
            )
        if head in ("out", "seed", "steps", "val_every", "val_split", "quiet", "device"):
            raise TuneError(f"{p.name!r} is set by fewshot tune or its --set, not searched")
        if option:
            registry, name = owners[head]
            valid = accepted_options(registry.get(name))  # None: takes any keyword
            if valid is not None and option not in valid:
                raise TuneError(
                    f"{registry.kind} {name!r} takes no option {option!r}; valid: {', '.join(sorted(valid))}"
                )
        for value in p.extremes():
            try:
                from_dict(merge(base, nested({p.name: value})))
            except (TypeError, ValueError) as e:
                raise TuneError(f"{p.name}={value!r} is not a valid setting: {e}") from None


# -- optuna -------------------------------------------------------------------------------


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return warnings.catch_warnings()


def open_storage(url: str, heartbeat: int, grace: int):
    """The RDB storage at ``url`` with heartbeats (dead workers' trials are failed and queued again)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    with _quiet_optuna():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return RDBStorage(
                url,
                engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
                heartbeat_interval=heartbeat,
                grace_period=grace,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
            )
        except Exception as e:  # sqlalchemy's errors, a missing driver, a bad URL: all one line
            raise TuneError(f"cannot open storage {url!r}: {type(e).__name__}: {str(e).splitlines()[0]}") from None


def make_sampler(name: str, seed: int):
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise TuneError('--sampler cmaes needs the cmaes package: pip install "fewshot[metaopt]"') from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def make_pruner(name: str, steps: int, val_every: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=val_every, max_resource=steps)
    return optuna.pruners.NopPruner()


def _counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {s.name: states.count(s) for s in TrialState}


def finished(study) -> int:
    c = _counts(study)
    return c["COMPLETE"] + c["PRUNED"]


@dataclass(frozen=True)
class Job:
    """What each worker process needs (picklable)."""

    base: dict  # the preset's settings, with --set applied
    space: list[Param]
    trials: int
    storage: str
    study: str
    sampler: str
    pruner: str
    seed: int
    out: str
    heartbeat: int
    grace: int
    threads: int


class _Surplus(Exception):
    """A trial asked for after the budget was filled by others: failed at once, not counted."""


def budgeted(trials: list, below: int) -> int:
    """How many of ``trials`` numbered below ``below`` hold a place in the budget: finished, running,
    queued (a dead worker's trial queued again), or failed for a stale heartbeat with the rerun not
    queued yet (Optuna fails a stale trial first and queues its rerun a moment later)."""
    from optuna.trial import TrialState

    held = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    rerun = {n for t in trials for n in t.system_attrs.get("retry_history", ())}

    def holds(t) -> bool:
        if t.state in held:
            return True
        own_failure = t.user_attrs.get("surplus") or t.user_attrs.get("error")
        return t.state == TrialState.FAIL and not own_failure and t.number not in rerun

    return sum(1 for t in trials if t.number < below and holds(t))


def alive_mark(number: int) -> str:
    """The user attribute value a trial's objective sets first: this process owns trial ``number``
    (a rerun copies its failed trial's attributes, so the mark names the number)."""
    return f"{os.getpid()}:{number}"


def fail_orphans(study, storage, grace: int) -> int:
    """Fail, and queue again, RUNNING trials whose worker died before their first heartbeat.

    Optuna fails only trials whose heartbeat went stale; a trial created (RUNNING) by a worker
    killed before its heartbeat thread first wrote has none, and would hold its place forever.
    A live trial marks itself (``alive_mark``) as the first thing its objective does, so a
    RUNNING trial older than ``grace`` seconds without its mark is an orphan. Returns how many
    were failed here (another worker may fail the same trial first: it is counted there)."""
    import optuna
    from optuna.trial import TrialState

    failed = 0
    now = datetime.now()  # Optuna stores datetime_start as naive local time
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        marked = str(t.user_attrs.get("alive", "")).endswith(f":{t.number}")
        if marked or t.datetime_start is None or (now - t.datetime_start).total_seconds() < grace:
            continue
        trial_id = t._trial_id  # FrozenTrial has no public id; the storage API takes it
        try:
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        failed += 1
        retry = storage.get_heartbeat_stale_trial_callback()
        if retry is not None:
            retry(study, storage.get_trial(trial_id))
    return failed


def objective(job: Job, trial) -> float:
    import optuna

    trial.set_user_attr("alive", alive_mark(trial.number))
    if budgeted(trial.study.get_trials(deepcopy=False), trial.number) >= job.trials:
        trial.set_user_attr("surplus", True)
        raise _Surplus(f"trial {trial.number}: the study already holds {job.trials} trials")
    try:
        return _train(job, trial)
    except optuna.TrialPruned:
        raise
    except Exception as e:
        trial.set_user_attr("error", f"{type(e).__name__}: {e}")  # failed here, never queued again
        raise


def _train(job: Job, trial) -> float:
    import optuna

    from fewshot.api import Learner
    from fewshot.engine.config import merge
    from fewshot.engine.tracking import read_metrics

    values = {p.name: p.suggest(trial) for p in job.space}
    run = Path(job.out) / "trials" / str(trial.number)
    settings = merge(job.base, nested(values))
    settings.update(out=str(run), quiet=True, test_episodes=0, tensorboard=False)
    trial.set_user_attr("run", str(run))
    learner = Learner(**settings)
    val_every = learner.config.val_every

    def report(step: int, metrics: dict) -> None:
        if step % val_every:
            return
        records = [r for r in read_metrics(run) if r["split"] == "val" and r["step"] == step]
        if records:
            record = records[-1]
            trial.report(record.get("accuracy", record.get("mse")), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

    result = learner.fit(callback=report, overwrite=True)
    if result.best_val is None:
        raise TuneError("the trial reported no validation score (is val_split none?)")
    return float(result.best_val)


def work(job: Job, worker: int) -> None:
    """One worker: run trials until the study holds ``job.trials`` finished ones."""
    import optuna
    import torch

    torch.set_num_threads(job.threads)
    with _quiet_optuna():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(job.storage, job.heartbeat, job.grace)
        study = optuna.load_study(study_name=job.study, storage=storage)
        # distinct random streams per worker and per resumption: no two workers propose the same start
        seed = job.seed + 7919 * worker + 104729 * len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(job.sampler, seed)
        study.pruner = make_pruner(job.pruner, job.base.get("steps", 2500), job.base.get("val_every", 500))
        while True:
            optuna.storages.fail_stale_trials(study)
            fail_orphans(study, storage, job.grace)
            c = _counts(study)
            done = c["COMPLETE"] + c["PRUNED"]
            if done >= job.trials:
                return
            if done + c["RUNNING"] >= job.trials and not c["WAITING"]:
                time.sleep(POLL)  # the last trials run elsewhere; take over if their worker dies
                continue
            try:
                study.optimize(lambda t: objective(job, t), n_trials=1, catch=(_Surplus,), gc_after_trial=True)
            except ValueError as e:  # the trial outlived its grace period and was failed and queued elsewhere
                if not str(e).startswith("Cannot tell a"):
                    raise
                log.warning("worker %d: %s (its heartbeat came too late; the trial runs again)", worker, e)


def tune(job: Job, jobs: int, direction: Direction) -> Any:
    """Create (or load) the study, run ``jobs`` workers on it, return the study."""
    import optuna

    storage = open_storage(job.storage, job.heartbeat, job.grace)
    with _quiet_optuna():
        try:
            study = optuna.create_study(study_name=job.study, storage=storage, direction=direction, load_if_exists=True)
        except Exception as e:
            raise TuneError(f"cannot create study {job.study!r} in {job.storage!r}: {e}") from None
    if study.direction.name.lower() != direction:
        raise TuneError(f"study {job.study!r} exists with direction {study.direction.name.lower()}, not {direction}")
    if jobs == 1:
        work(job, 0)
    else:
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=work, args=(job, i)) for i in range(jobs)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        failed = [w.exitcode for w in workers if w.exitcode]
        if failed:
            raise RuntimeError(f"{len(failed)} of {jobs} workers failed (exit codes {failed}); see their stderr")
    return study


# -- results ------------------------------------------------------------------------------


def write_results(study, job: Job, preset_values: dict) -> dict:
    """``best.yaml``, ``study.json`` and the two plots; returns the summary."""
    import optuna
    from optuna.trial import TrialState

    from fewshot.engine.config import merge

    out = Path(job.out)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summary: dict[str, Any] = {
        "study": job.study,
        "storage": job.storage,
        "direction": study.direction.name.lower(),
        "trials": {k.lower(): v for k, v in _counts(study).items() if v},
        "best": None,
    }
    rows = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "value": t.value,
            "params": t.params,
            "steps_reported": max(t.intermediate_values, default=None),
            "seconds": None
            if t.datetime_complete is None
            else (t.datetime_complete - t.datetime_start).total_seconds(),
        }
        for t in trials
    ]
    if complete:
        best = study.best_trial
        settings = merge(preset_values, nested(best.params))
        for transient in ("out", "quiet"):
            settings.pop(transient, None)
        header = f"# fewshot tune: the best of {len(complete)} complete trials of study {job.study!r}\n"
        header += f"# (trial {best.number}, validation {best.value:.6g}); train it with fewshot train --config\n"
        (out / "best.yaml").write_text(header + yaml.safe_dump(settings, sort_keys=False))
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params}
        summary["best_config"] = str(out / "best.yaml")
        plot_history(complete, summary["direction"], out / "history.png")
        if len(complete) >= 2 and job.space:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                try:
                    importance = optuna.importance.get_param_importances(study)
                except (RuntimeError, ValueError):  # a space with a single distinct value, say
                    importance = {}
            summary["importance"] = importance
            if importance:
                plot_importance(importance, out / "importance.png")
    (out / "study.json").write_text(json.dumps({**summary, "all": rows}, indent=2, default=str) + "\n")
    return summary


def plot_history(complete: list, direction: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    complete = sorted(complete, key=lambda t: t.number)
    values = [t.value for t in complete]
    pick = max if direction == "maximize" else min
    best = [pick(values[: i + 1]) for i in range(len(values))]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot([t.number for t in complete], values, "o", ms=4, label="trial")
    ax.step([t.number for t in complete], best, where="post", label="best so far")
    metric = "accuracy" if direction == "maximize" else "MSE"
    ax.set(xlabel="trial", ylabel=f"best validation {metric} of the trial", title="optimization history")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_importance(importance: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importance)[::-1]
    fig, ax = plt.subplots(figsize=(5, 1.6 + 0.4 * len(names)))
    ax.barh(names, [importance[n] for n in names])
    ax.set(xlabel="importance (fANOVA)", title="parameter importances")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the command --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="fewshot tune", description="Hyperparameter search on Optuna over fewshot train's settings.")
    p.add_argument("--config", help="a preset name or YAML/TOML file (default: the built-in defaults)")
    p.add_argument("--space", required=True, help="YAML: setting -> range (see the module docstring)")
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--out", required=True, help="folder for trials/, best.yaml, study.json and the plots")
    p.add_argument("--storage", help="SQLAlchemy URL (default sqlite:///OUT/study.db)")
    p.add_argument("--study", default="fewshot-tune", help="study name in the storage")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe")
    p.add_argument("--pruner", choices=PRUNERS, default="median")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed setting (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="the samplers' seed")
    p.add_argument("--heartbeat", type=int, default=10, help="seconds between a worker's heartbeats")
    p.add_argument("--grace", type=int, default=60, help="seconds without a heartbeat before a trial is failed")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    return p


def direction_of(settings: dict) -> Direction:
    """Maximise accuracy; minimise MSE on regression task families."""
    from fewshot.data.loading import get_dataset
    from fewshot.data.tasks import is_task_family
    from fewshot.engine.config import from_dict

    config = from_dict(settings)
    data = get_dataset(config.dataset, root=config.data_root, split=config.val_split, **config.dataset_options)
    return "minimize" if is_task_family(data) and data.task == "regression" else "maximize"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fewshot tune ...``; returns the exit status."""
    from fewshot.engine.config import merge, parse_overrides, read_settings

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.trials < 1 or args.jobs < 1 or args.heartbeat < 1 or args.grace <= args.heartbeat:
            raise TuneError("--trials and --jobs must be >= 1, --heartbeat >= 1 and --grace above --heartbeat")
        try:
            preset = read_settings(args.config) if args.config else {}
            base = merge(preset, parse_overrides(args.set))
        except (FileNotFoundError, ValueError) as e:
            raise TuneError(str(e)) from None
        if str(base.get("val_split", "val")) in ("", "none", "None"):
            raise TuneError("tuning needs a validation split: the preset sets val_split to none")
        space = read_space(args.space)
        check_space(space, base)
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise TuneError('fewshot tune needs Optuna: pip install "fewshot[metaopt]"') from None
        out = Path(args.out)
        storage = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
        if ":memory:" in storage and args.jobs > 1:
            raise TuneError("an in-memory SQLite study cannot be shared by worker processes; give a file or server URL")
        if args.storage:
            open_storage(storage, args.heartbeat, args.grace)  # a URL that cannot be opened fails before OUT exists
        out.mkdir(parents=True, exist_ok=True)
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        job = Job(base, space, args.trials, storage, args.study, args.sampler, args.pruner, args.seed, str(out),
                  args.heartbeat, args.grace, threads)  # fmt: skip
        study = tune(job, args.jobs, direction_of(base))
        summary = write_results(study, job, base)
    except (TuneError, UsageError) as e:
        print(f"fewshot tune: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(summary, default=str))
    elif summary["best"] is None:
        print(f"{args.out}: no complete trial")
    else:
        best = summary["best"]
        print(
            f"best trial {best['number']}: {best['value']:.6g} with {best['params']}; preset {summary['best_config']}"
        )
    return 0
