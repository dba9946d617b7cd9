"""Checkpoints: a folder with safetensors weights and JSON metadata. Loading never unpickles.

    model.safetensors        the algorithm's state_dict
    checkpoint.json          metadata (for learners: see ``engine.learners``), the format,
                             the library version and the SHA-256 of the weights file
    training_state.*         (resumable checkpoints) optimizer, scheduler, RNG states, step

Folders are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

import fewshot

WEIGHTS, METADATA = "model.safetensors", "checkpoint.json"
STATE_TENSORS, STATE_JSON = "training_state.safetensors", "training_state.json"
FORMAT = 2  # 1: fewshot 0.1.0 (read by engine.learners)


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, or does not match its metadata."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def flatten_state(obj, tensors: dict[str, Tensor], prefix: str = "t"):
    """A JSON-able skeleton of nested dicts/lists whose tensors move into ``tensors``."""
    if isinstance(obj, Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__items__": [[k, flatten_state(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__" + type(obj).__name__ + "__": [flatten_state(v, tensors, prefix) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def unflatten_state(skeleton, tensors: dict[str, Tensor]):
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__items__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__items__"]}
        if "__list__" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["__list__"]]
        if "__tuple__" in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    return skeleton


def save_checkpoint(path, state_dict: dict[str, Tensor], metadata: dict, training_state: dict | None = None) -> Path:
    """Write a checkpoint folder at ``path`` atomically (replacing an older one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        # safetensors refuses shared storage: store each tensor on its own
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in state_dict.items()}, tmp / WEIGHTS)
        meta = {"format": FORMAT, "fewshot_version": fewshot.__version__, **metadata}
        meta["weights_sha256"] = _sha256(tmp / WEIGHTS)
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        if training_state is not None:
            tensors: dict[str, Tensor] = {}
            skeleton = flatten_state(training_state, tensors)
            save_file(tensors, tmp / STATE_TENSORS)
            (tmp / STATE_JSON).write_text(json.dumps(skeleton))
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Move the new folder ``tmp`` to ``path``; an older ``path`` waits as ``.NAME.old`` until the new one is
    in place (``finish_swap`` puts it back if a kill came between the two renames)."""
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def finish_swap(path) -> None:
    """After a kill between ``_swap_into_place``'s two renames, ``path`` is missing and its previous
    version waits as ``.NAME.old``: put it back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.is_dir():
        os.replace(old, path)


def read_metadata(path) -> dict:
    path = Path(path)
    finish_swap(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no checkpoint folder here")
    try:
        meta = json.loads((path / METADATA).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing {METADATA}; is this a fewshot checkpoint?") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path / METADATA}: damaged JSON ({e})") from None
    if not isinstance(meta, dict) or "format" not in meta:
        raise CheckpointError(f"{path / METADATA}: not fewshot checkpoint metadata")
    return meta


def read_checkpoint(path) -> tuple[dict, dict[str, Tensor]]:
    """(metadata, state_dict) of a checkpoint folder, verified against its metadata."""
    path = Path(path)
    meta = read_metadata(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{path}: missing {WEIGHTS}")
    if meta.get("weights_sha256") != _sha256(weights):
        raise CheckpointError(f"{weights}: does not match the SHA-256 in {METADATA} (damaged or replaced file)")
    try:
        return meta, load_file(weights)
    except SafetensorError as e:
        raise CheckpointError(f"{weights}: not a valid safetensors file ({e})") from None


def read_training_state(path) -> dict:
    path = Path(path)
    try:
        skeleton = json.loads((path / STATE_JSON).read_text())
        return unflatten_state(skeleton, load_file(path / STATE_TENSORS))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: holds no training state to resume from") from None
    except (json.JSONDecodeError, SafetensorError) as e:
        raise CheckpointError(f"{path}: damaged training state ({e})") from None


def load_state(module: torch.nn.Module, state_dict: dict[str, Tensor], source) -> None:
    """``load_state_dict`` with a clear error when the weights do not fit the model."""
    missing, unexpected = module.state_dict().keys() - state_dict.keys(), state_dict.keys() - module.state_dict().keys()
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not fit a {type(module).__name__} "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: weights do not fit a {type(module).__name__}: {e}") from None
