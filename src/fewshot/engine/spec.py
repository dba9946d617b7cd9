"""Names -> learners: how the CLI, the service and the Python API build an algorithm.

A *learner spec* is a plain dict (stored in every checkpoint) from which
``build_algorithm`` rebuilds the same module: algorithm and backbone names, their
settings, and what the data looks like (input shape, ways, task kind).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from fewshot.algorithms.base import Algorithm
from fewshot.engine.checkpoint import CheckpointError, load_state, read_checkpoint
from fewshot.registry import check_options

GRADIENT = ("maml", "fomaml", "anil", "metasgd", "reptile")
METRIC = ("protonet", "matching", "relation")
ALGORITHMS = (*METRIC, *GRADIENT, "finetune")


def _encoder(spec: dict, num_classes: int | None = None) -> nn.Module:
    from fewshot.nn import get_backbone

    name, options, shape = spec["backbone"], dict(spec.get("backbone_options", {})), spec["input_shape"]
    if name == "mlp":
        options.setdefault("in_features", math.prod(shape))
    else:
        if len(shape) != 3:
            raise ValueError(f"backbone {name!r} needs images [C, H, W], but the data has shape {shape}")
        options.setdefault("in_channels", shape[0])
        if name == "conv4":
            options.setdefault("image_size", shape[-1])
    from fewshot.nn import BACKBONES

    if name in BACKBONES:
        check_options(BACKBONES[name], spec.get("backbone_options", {}), f"backbone {name!r}", ("num_classes",))
    return get_backbone(name, num_classes=num_classes, **options)


def build_algorithm(spec: dict) -> Algorithm:
    """A freshly initialised algorithm from a learner spec (see ``learner_spec``)."""
    name, options = spec["algorithm"], dict(spec.get("algorithm_options", {}))
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; valid names: {', '.join(ALGORITHMS)}")
    if name in GRADIENT:
        from fewshot.algorithms import gradient

        outputs = spec["ways"] if spec["task"] == "classification" else spec["target_dim"]
        model = _encoder(spec, num_classes=outputs)
        cls = {
            "maml": gradient.MAML,
            "fomaml": gradient.FOMAML,
            "anil": gradient.ANIL,
            "metasgd": gradient.MetaSGD,
            "reptile": gradient.Reptile,
        }[name]
        check_options(cls, options, f"algorithm {name!r}", ("model", "task"))
        return cls(model, task=spec["task"], **options)
    if spec["task"] != "classification":
        raise ValueError(f"{name} is a classification method; use a gradient-based method for regression")
    if name == "relation":
        from fewshot.algorithms.metric import RelationNet
        from fewshot.algorithms.metric.relation import Conv4Maps

        if spec["backbone"] != "conv4":
            raise ValueError("relation uses the paper's Conv4 feature maps; set backbone to conv4")
        shape = spec["input_shape"]
        check_options(RelationNet, options, "algorithm 'relation'", ("encoder",))
        check_options(Conv4Maps, spec.get("backbone_options", {}), "backbone 'conv4' (relation)", ("in_channels",))
        return RelationNet(Conv4Maps(shape[0], image_size=shape[-1], **spec.get("backbone_options", {})), **options)
    encoder = _encoder(spec)
    if name == "protonet":
        from fewshot.algorithms.metric import ProtoNet

        check_options(ProtoNet, options, "algorithm 'protonet'", ("encoder",))
        return ProtoNet(encoder, **options)
    if name == "matching":
        from fewshot.algorithms.metric import MatchingNet

        check_options(MatchingNet, options, "algorithm 'matching'", ("encoder",))
        return MatchingNet(encoder, **options)
    from fewshot.algorithms.baseline import FineTune

    check_options(FineTune, options, "algorithm 'finetune'", ("encoder", "num_classes"))
    return FineTune(encoder, num_classes=spec["num_train_classes"], **options)


def check_names(config) -> None:
    """Unknown algorithm, backbone or dataset names fail before any data is loaded."""
    from fewshot.data.registry import DATASETS
    from fewshot.nn import BACKBONES

    for kind, name, valid in [
        ("algorithm", config.algorithm, ALGORITHMS),
        ("backbone", config.backbone, BACKBONES),
        ("dataset", config.dataset, DATASETS),
    ]:
        if name not in valid:
            raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(valid))}")


def learner_spec(config, dataset) -> dict:
    """The spec of ``config``'s learner for data shaped like ``dataset``'s."""
    if hasattr(dataset, "sample_tasks"):  # a regression task family
        episode = dataset.sample_tasks(1, 1, 1, torch.Generator().manual_seed(0))
        input_shape, task, target_dim = list(episode.support_x.shape[2:]), "regression", episode.support_y.shape[-1]
    else:
        input_shape, task, target_dim = list(dataset[0][0].shape), "classification", None
    return {
        "algorithm": config.algorithm,
        "algorithm_options": dict(config.algorithm_options),
        "backbone": config.backbone,
        "backbone_options": dict(config.backbone_options),
        "input_shape": input_shape,
        "ways": config.ways,
        "task": task,
        "target_dim": target_dim,
        "num_train_classes": getattr(dataset, "num_classes", 0),
    }


def load_learner(path, options: dict | None = None) -> tuple[Algorithm, dict]:
    """The algorithm stored in a checkpoint folder (or a run folder holding ``checkpoint/``).

    ``options`` replace algorithm options of the stored spec before the weights load (test-time
    settings such as ``adapt_steps`` or RelationNet's ``bn``); the metadata keeps the stored ones.
    """
    path = Path(path)
    if (path / "checkpoint").is_dir() and not (path / "checkpoint.json").exists():
        path = path / "checkpoint"
    meta, state = read_checkpoint(path)
    spec = meta.get("learner")
    if not isinstance(spec, dict) or spec.get("algorithm") != meta["algorithm"]:
        raise CheckpointError(f"{path}: metadata lacks a learner spec matching algorithm {meta['algorithm']!r}")
    if options:
        spec = {**spec, "algorithm_options": {**spec.get("algorithm_options", {}), **options}}
    algorithm = build_algorithm(spec)
    load_state(algorithm, state, path)
    algorithm.eval()
    return algorithm, meta
