"""Settings of a molecule run: presets (``presets/NAME.yaml``) or YAML files, ``--set KEY=VALUE`` overrides.

A run meta-trains a learner on the training assays of ``data`` and is evaluated on its test
assays with the dataset's protocol: FS-Mol's stratified supports of ``eval_sizes`` molecules,
or (assay tables) the MoleculeNet protocol of ``eval_sizes`` = K actives + K inactives.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fewshot.commandline import parse_settings
from fewshot.data.shared import shared_data_dir
from fewshot.files import load_yaml

DOMAIN = "molecules"
DATASETS = ("fs-mol", "tox21", "sider", "muv", "assays")
DEVICE = re.compile(r"auto|cpu|cuda(?::\d+)?")
PROTOCOLS = {"fs-mol": "fs-mol"}  # every other dataset: "moleculenet"


class ConfigError(ValueError):
    """A preset or setting that does not exist or does not fit: one message naming it."""


@dataclass
class MolConfig:
    """What a run trains and how; every field can be set in a preset or with ``--set``."""

    data: str = "fs-mol"  # fs-mol | tox21 | sider | muv | assays (any CSV given as data_root)
    data_root: str | None = None  # default: the shared data folder (molecules/, molecules/fs-mol)
    data_options: dict[str, Any] = field(default_factory=dict)  # assays: train_tasks, test_tasks, smiles_column
    featurizer: Any = "ecfp"  # "ecfp", "ecfp+graph", {"ecfp": {"counts": true}}, ...
    algorithm: str = "protonet"  # protonet | mahalanobis (FS-Mol's ProtoNet distance) | adkf
    settings: dict[str, Any] = field(default_factory=dict)  # the algorithm's own settings
    encoder: dict[str, Any] = field(default_factory=lambda: {"kind": "mlp", "hidden": [1024, 512]})
    steps: int = 8000
    shots: int = 8  # training episodes: shots actives + shots inactives per assay ...
    queries: int = 8  # ... and queries of each class
    batch_size: int = 16  # assays per episode
    lr: float = 3e-4
    weight_decay: float = 0.0
    seed: int = 0
    time_limit: float | None = None  # seconds of training per session
    validate_every: int = 1000  # 0: no validation, the final weights are kept
    valid_draws: int = 2
    valid_queries: int | None = 256  # FS-Mol validation: a stratified subset of the rest of each assay
    save_every: int = 500  # steps between resumable checkpoints (last/)
    eval_sizes: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    eval_draws: int = 10
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (CUDA when there is one); where training runs

    def __post_init__(self) -> None:
        checks = [
            (self.data in DATASETS, f"data must be one of {', '.join(DATASETS)}"),
            (self.algorithm in ("protonet", "mahalanobis", "adkf"), "algorithm must be protonet, mahalanobis or adkf"),
            (isinstance(self.encoder, dict) and self.encoder.get("kind") in ("mlp", "gnn"),
             "encoder needs kind: mlp or gnn"),
            (self.steps >= 0 and self.shots >= 1 and self.queries >= 1 and self.batch_size >= 1,
             "steps must be >= 0; shots, queries and batch_size >= 1"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0"),
            (self.validate_every >= 0 and self.valid_draws >= 1 and self.save_every >= 1,
             "validate_every must be >= 0; valid_draws and save_every >= 1"),
            (bool(self.eval_sizes) and all(s >= 1 for s in self.eval_sizes) and self.eval_draws >= 1,
             "eval_sizes must be positive integers and eval_draws >= 1"),
            (self.time_limit is None or self.time_limit > 0, "time_limit must be > 0 seconds"),
            (bool(DEVICE.fullmatch(self.device)), f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.data == "assays" and not self.data_root:
            raise ConfigError("data: assays needs data_root, the CSV (or .csv.gz) assay table (--data-root)")

    @property
    def protocol(self) -> str:
        return PROTOCOLS.get(self.data, "moleculenet")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> MolConfig:
        return merge(MolConfig(), values)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` texts, values as YAML (``3``, ``1e-4``, ``[512, 128]``, ``true``) else text."""
    return parse_settings(pairs, ConfigError)


def presets_dir() -> Path:
    return Path(str(resources.files("fewshot.molecules") / "presets"))


def list_presets() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in presets_dir().glob("*.yaml"))


def read_preset(name_or_path: str) -> dict[str, Any]:
    """The settings of a preset name or a YAML file (its ``domain`` key, if any, must be molecules)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = presets_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"config {name_or_path!r} is neither a YAML file nor a preset; presets: {', '.join(list_presets())}"
            )
    try:
        values = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    domain = values.pop("domain", DOMAIN)
    if domain != DOMAIN:
        raise ConfigError(f"{path}: domain {domain!r} is not a molecules config")
    return values


def merge(config: MolConfig, values: dict[str, Any]) -> MolConfig:
    """``config`` with ``values``; ``encoder.hidden`` or ``data_options.train_tasks`` reach into a mapping."""
    names = {f.name: f for f in dataclasses.fields(MolConfig)}
    out = config.to_dict()
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ConfigError(f"unknown setting {head!r}; valid: {', '.join(sorted(names))}")
        if rest:
            if not isinstance(out[head], dict):
                raise ConfigError(f"setting {head} has no sub-settings (got {key!r})")
            out[head] = {**out[head], rest: value}
        else:
            out[head] = _coerce(head, value, out[head])
    try:
        return MolConfig(**out)
    except TypeError as e:
        raise ConfigError(str(e)) from None


FLOATS = ("lr", "weight_decay", "time_limit")
OPTIONAL = ("time_limit", "valid_queries", "data_root")


def _coerce(name: str, value: Any, current: Any) -> Any:
    """``value`` as the type the field holds, or one error naming the field."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    if name in OPTIONAL and value is None:
        return None
    if name == "featurizer":
        if isinstance(value, (str, dict, list)):
            return value
    elif name == "data_root":
        if isinstance(value, (str, os.PathLike)):
            return str(value)
    elif name in FLOATS:
        if integer or isinstance(value, float):
            return float(value)
    elif name == "eval_sizes":
        if integer:
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
    elif name == "valid_queries" or isinstance(current, int):
        if integer:
            return value
    elif isinstance(current, dict):
        if isinstance(value, dict):
            return dict(value)
    elif isinstance(value, type(current)):
        return value
    raise ConfigError(f"setting {name} cannot be {value!r}")


def load_config(name_or_path: str, overrides: dict[str, Any] | None = None) -> MolConfig:
    """A preset or YAML file with ``overrides`` applied, checked."""
    return merge(MolConfig(), {**read_preset(name_or_path), **(overrides or {})})


def resolve_device(name: str):
    """The ``torch.device`` of ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when there is one), checked
    to exist here: one ``ConfigError`` otherwise (the CLI prints it as one line and exits 2)."""
    import torch

    if not DEVICE.fullmatch(name):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine; use --device cpu or auto")
        index, count = int(name.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device(name)


def data_root(config: MolConfig, override: str | None = None) -> Path:
    """Where the run's data is: ``override``, the config's ``data_root``, or the shared data folder."""
    if override or config.data_root:
        return Path(override or str(config.data_root))
    molecules = shared_data_dir() / "molecules"
    return molecules / "fs-mol" if config.data == "fs-mol" else molecules
