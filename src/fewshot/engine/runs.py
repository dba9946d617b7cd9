"""Run folders: where a new run goes, what a resume may change, and never overwriting a run by accident.

A run without ``out`` gets its own folder ``runs/<time>-<algorithm>-<dataset>`` and ``runs/latest``
links to it. A resume rebuilds the run's own configuration from its ``config.json``; flags given with
it may change only ``RESUME_MAY_CHANGE`` (where files go, how long to train, how to log and test).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from fewshot.engine.config import TrainConfig, from_dict, merge

RUNS, LATEST = Path("runs"), "latest"
# settings that do not change what a run has learned so far
RESUME_MAY_CHANGE = frozenset(
    {"steps", "time_limit", "device", "data_root", "out", "quiet", "tensorboard", "log_every", "keep_freed_memory"}
    | {"compile"}  # the same values, computed faster
    | {"test_ways", "test_shots", "test_queries", "test_episodes"}
)
TEST_TIME_OPTIONS = frozenset({"adapt_steps", "adapt_batch"})  # algorithm options that act in adapt only
RUN_FILES = ("config.json", "metrics.jsonl", "result.json", "curves.png", "checkpoint", "last", "tensorboard")


def torchrun_id() -> str | None:
    """The id torchrun gave this job (``--rdzv-id``, default ``none``; ``--standalone`` draws one);
    None outside torchrun."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or None


def continues_after_restart(run_dir: Path) -> bool:
    """Whether torchrun re-ran this command (an elastic restart, or the job started again under the
    same ``--rdzv-id``) and ``run_dir/last`` holds what this job saved: then it continues as ``--resume``."""
    run_id = torchrun_id()
    if run_id is None or not (Path(run_dir) / "last").is_dir():
        return False
    if run_id == "none" and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) == 0:
        return False  # torchrun's default id names no job: only a restart counts
    from fewshot.engine.checkpoint import CheckpointError, read_training_state  # torch: only here

    try:
        return read_training_state(Path(run_dir) / "last").get("elastic_run_id") == run_id
    except CheckpointError:  # damaged: refused as a run in the way; --resume then names the damage
        return False


def new_run_dir(config: TrainConfig, root: Path = RUNS) -> Path:
    """A fresh folder name for a run without ``out``; under torchrun, the same on every process
    and on every restart."""
    run_id = torchrun_id()
    if run_id == "none" and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        run_id = None  # torchrun's default id names no job, and one process needs no agreement on a name
    stem = f"{config.algorithm}-{config.dataset}-{run_id}" if run_id else time.strftime("%Y%m%d-%H%M%S")
    name = stem if run_id else f"{stem}-{config.algorithm}-{config.dataset}"
    path, n = root / name, 1
    while path.exists() and not run_id:
        n += 1
        path = root / f"{name}-{n}"
    return path


def link_latest(run_dir: Path) -> None:
    """Point ``<parent>/latest`` at ``run_dir`` (a relative symlink, replaced atomically)."""
    link = run_dir.parent / LATEST
    if link.exists() and not link.is_symlink():
        return  # an old run folder named latest: leave it be
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # no symlinks here (some Windows setups): the run folder is printed anyway
        tmp.unlink(missing_ok=True)


def holds_run(path: Path) -> bool:
    return (path / "config.json").exists() or (path / "last").exists() or (path / "checkpoint").exists()


def clear_run(path: Path) -> None:
    """Remove a run's own files from ``path`` (``--overwrite``); other files stay."""
    for name in RUN_FILES:
        target = path / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def stored_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no run to resume here (no config.json)")
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: damaged JSON ({e})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: not a run configuration")
    return values


def differences(old: dict, new: dict) -> dict[str, tuple]:
    """``{"key": (old, new)}`` for the settings that differ; options compared key by key (``algorithm_options.x``)."""
    out: dict[str, tuple] = {}
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        if key.endswith("_options") and isinstance(a, dict) and isinstance(b, dict):
            out |= {f"{key}.{k}": (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
        elif a != b:
            out[key] = (a, b)
    return out


def may_change_on_resume(key: str) -> bool:
    head, _, option = key.partition(".")
    return key in RESUME_MAY_CHANGE or (head == "algorithm_options" and option in TEST_TIME_OPTIONS)


def resume_config(run_dir, changes: dict) -> TrainConfig:
    """The configuration of the run in ``run_dir`` with ``changes`` applied; a change that would mix
    two recipes in one run is one error naming each difference."""
    run_dir = Path(run_dir)
    stored = stored_config(run_dir)
    config = from_dict(merge(stored, {k: v for k, v in changes.items() if v is not None}), source=str(run_dir))
    config = config.replace(out=str(run_dir))
    refused = {k: v for k, v in differences(stored, config.to_dict()).items() if not may_change_on_resume(k)}
    if refused:
        diffs = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(refused.items()))
        raise ValueError(
            f"{run_dir}: cannot resume with other settings ({diffs}); a resume may change only "
            f"{', '.join(sorted(RESUME_MAY_CHANGE))}; train into a new --out instead"
        )
    return config
