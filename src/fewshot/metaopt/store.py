"""Learned optimizers on disk: a checkpoint folder like every other (safetensors weights + JSON).

``checkpoint.json`` holds ``kind: "learned-optimizer"``, the rule's name and settings (enough to
rebuild it), how it was trained and its validation metrics. Loading never unpickles; a folder of
another kind (a learner checkpoint, say) is one clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fewshot.engine.checkpoint import CheckpointError, load_state, read_checkpoint, read_metadata, save_checkpoint
from fewshot.metaopt.rules import RULES, LearnedRule

KIND = "learned-optimizer"


def save_rule(path, rule: LearnedRule, *, training: dict | None = None, metrics: dict | None = None) -> Path:
    """Write ``rule`` (weights and settings) as a checkpoint folder at ``path``."""
    meta: dict[str, Any] = {"kind": KIND, "rule": rule.kind, "settings": rule.settings()}
    meta["training"] = training or {}
    meta["metrics"] = metrics or {}
    return save_checkpoint(path, rule.state_dict(), meta)


def checkpoint_folder(path) -> Path:
    """``path`` itself, or its ``checkpoint/`` when ``path`` is a run folder."""
    path = Path(path)
    return path / "checkpoint" if (path / "checkpoint").is_dir() and not (path / "checkpoint.json").exists() else path


def read_rule_metadata(path) -> dict:
    """The metadata of a learned-optimizer checkpoint; another kind of checkpoint is a ``CheckpointError``."""
    folder = checkpoint_folder(path)
    meta = read_metadata(folder)
    if meta.get("kind") != KIND:
        what = "a learner checkpoint" if "learner" in meta else f"a checkpoint of kind {meta.get('kind')!r}"
        raise CheckpointError(f"{folder}: {what}, not a learned optimizer (kind {KIND!r})")
    return meta


def load_rule(path, **overrides: Any) -> LearnedRule:
    """The learned rule stored at ``path`` (a checkpoint or run folder); ``overrides`` replace stored
    settings that do not change the weights (``fallback_lr``)."""
    folder = checkpoint_folder(path)
    read_rule_metadata(folder)
    meta, weights = read_checkpoint(folder)
    if meta["rule"] not in RULES:
        raise CheckpointError(f"{folder}: unknown learned-optimizer rule {meta['rule']!r}")
    try:
        rule = RULES.build(meta["rule"], **{**meta.get("settings", {}), **overrides})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}: cannot rebuild the {meta['rule']} rule: {e}") from None
    load_state(rule, weights, folder)
    return rule
