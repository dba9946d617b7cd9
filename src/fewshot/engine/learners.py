"""Learners and checkpoints: the spec of a configured learner, and the one reader that every
consumer (evaluate, predict, serve, deploy, the Python API) loads a checkpoint with.

``checkpoint.json`` (format 2) holds each fact once::

    learner   the LearnerSpec: algorithm, backbone, their options, input shape, ways, preprocessing
    training  the training settings that the spec does not hold (dataset, shots, steps, lr, ...)
    step, metrics, fewshot_version, format, weights_sha256

Format 1 checkpoints (fewshot 0.1.0: the spec, a ``data`` block and the whole config, with
``algorithm`` and ``ways`` three times) are still read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fewshot.algorithms.base import Algorithm
from fewshot.algorithms.spec import LearnerSpec, build_algorithm
from fewshot.data.tasks import is_task_family
from fewshot.engine.checkpoint import CheckpointError, load_state, read_checkpoint
from fewshot.engine.config import TrainConfig, from_dict
from fewshot.registry import ALGORITHMS, BACKBONES, DATASETS

SPEC_KEYS = ("algorithm", "algorithm_options", "backbone", "backbone_options", "ways")  # in the spec, not training


def check_names(config: TrainConfig) -> None:
    """Unknown algorithm, backbone or dataset names fail before any data is loaded."""
    for registry, name in ((ALGORITHMS, config.algorithm), (BACKBONES, config.backbone), (DATASETS, config.dataset)):
        registry.check(name)


def learner_spec(config: TrainConfig, data) -> LearnerSpec:
    """The spec of ``config``'s learner for data shaped like ``data`` (a labelled dataset or a task family)."""
    if is_task_family(data):
        episode = data.sample_tasks(1, 1, 1, torch.Generator().manual_seed(0))
        input_shape, task = tuple(episode.support_x.shape[2:]), data.task
        target_dim = int(episode.support_y.shape[-1]) if task == "regression" else None
    else:
        input_shape, task, target_dim = tuple(data[0][0].shape), "classification", None
    return LearnerSpec(
        algorithm=config.algorithm,
        backbone=config.backbone,
        input_shape=input_shape,
        ways=config.ways,
        task=task,
        target_dim=target_dim,
        num_train_classes=getattr(data, "num_classes", 0),
        algorithm_options=dict(config.algorithm_options),
        backbone_options=dict(config.backbone_options),
        preprocessing=getattr(data, "preprocessing", None),
    )


def checkpoint_metadata(
    spec: LearnerSpec | None, config: TrainConfig | None, step: int | None = None, metrics: dict | None = None
) -> dict[str, Any]:
    """What ``checkpoint.json`` holds besides the format, version and weights hash."""
    training = None if config is None else {k: v for k, v in config.to_dict().items() if k not in SPEC_KEYS}
    learner = None if spec is None else spec.to_dict()
    return {"learner": learner, "training": training, "step": step, "metrics": metrics or {}}


@dataclass(frozen=True)
class StoredLearner:
    """A checkpoint's learner spec, the settings it was trained with (when fewshot trained it) and its record."""

    path: Path
    spec: LearnerSpec
    config: TrainConfig | None = None
    step: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    fewshot_version: str | None = None


def checkpoint_folder(path) -> Path:
    """``path`` itself, or the ``checkpoint/`` of a run folder."""
    path = Path(path)
    if (path / "checkpoint").is_dir() and not (path / "checkpoint.json").exists():
        return path / "checkpoint"
    return path


def stored_learner(path: Path, meta: dict[str, Any]) -> StoredLearner:
    """The ``StoredLearner`` of a checkpoint's metadata, of either format."""
    try:
        if meta.get("format", 1) == 1:
            spec = LearnerSpec.from_dict({**meta["learner"], "preprocessing": meta.get("preprocessing")})
            settings = meta.get("config")
        else:
            if meta.get("learner") is None:
                raise CheckpointError(f"{path}: the weights of a learner built without a spec; load them by hand")
            spec = LearnerSpec.from_dict(meta["learner"])
            training = meta.get("training")
            settings = None if training is None else {**training, **{k: getattr(spec, k) for k in SPEC_KEYS}}
        config = None if settings is None else from_dict(settings, source=f"{path}: training settings")
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: checkpoint metadata does not describe a learner ({e})") from None
    return StoredLearner(path, spec, config, meta.get("step"), meta.get("metrics") or {}, meta.get("fewshot_version"))


def load_learner(path, options: dict | None = None) -> tuple[Algorithm, StoredLearner]:
    """The algorithm stored in a checkpoint folder (or a run folder holding ``checkpoint/``), in eval mode.

    ``options`` replace algorithm options of the stored spec before the weights load (test-time
    settings such as ``adapt_steps`` or RelationNet's ``bn``); the returned record keeps the stored ones.
    """
    path = checkpoint_folder(path)
    meta, state = read_checkpoint(path)
    stored = stored_learner(path, meta)
    if meta.get("format", 1) == 1 and stored.spec.algorithm == "metasgd":  # 0.1.0 named Meta-SGD's rates lrs.*
        state = {f"inner_opt.{k}" if k.startswith("lrs.") else k: v for k, v in state.items()}
    spec = stored.spec.with_options(**options) if options else stored.spec
    algorithm = build_algorithm(spec)
    load_state(algorithm, state, path)
    algorithm.eval()
    return algorithm, stored
