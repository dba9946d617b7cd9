"""Typed training settings: presets (YAML or TOML) plus command-line overrides."""

from __future__ import annotations

import dataclasses
import json
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

import yaml

from fewshot.files import load_yaml as _yaml


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder."""

    # what to train
    algorithm: str = "protonet"
    algorithm_options: dict = field(default_factory=dict)  # e.g. inner_lr, inner_steps, distance
    backbone: str = "conv4"
    backbone_options: dict = field(default_factory=dict)
    # data
    dataset: str = "glyphs"
    data_root: str | None = None
    dataset_options: dict = field(default_factory=dict)  # e.g. image_size, rotations
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    ways: int = 5
    shots: int = 1
    queries: int = 15
    test_ways: int | None = None  # evaluation shape, defaults to ways/shots
    test_shots: int | None = None
    test_queries: int | None = None
    meta_batch: int = 1
    batch_size: int = 128  # examples per step for supervised pre-training (the FineTune baseline)
    augment: bool = False
    # optimisation
    steps: int = 2500  # 0: no training, the initial learner is saved and tested
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"  # constant | cosine | linear | step | hypergradient (the rate learned online)
    hypergradient_lr: float | None = None  # schedule=hypergradient: the rate's own rate (None: 1e-7 adam, 1e-3 sgd)
    min_lr: float = 0.0  # schedule=cosine: the rate it anneals to (MAML++: 1e-5)
    step_size: int = 0  # for schedule=step: decay every step_size steps (0: steps // 4)
    gamma: float = 0.5
    warmup: int = 0
    grad_clip: float | None = None
    amp: bool | None = None  # bfloat16 autocast; None: where it pays, keeping accuracy (engine/precision.py)
    compile: bool | None = None  # gradient learners' per-task function; None: where it pays (engine/precision.py)
    channels_last: bool = True  # conv weights NHWC where the algorithm gains from it (metric learners on CPU)
    keep_freed_memory: bool = True  # CPU runs: glibc keeps freed blocks for the next step (engine/memory.py)
    # validation, testing, stopping
    val_every: int = 500
    val_episodes: int = 200
    test_episodes: int = 600  # 0: no test at the end of training
    patience: int | None = None  # validations without improvement before stopping
    time_limit: float | None = None  # wall seconds in fit, validation included (over resumes); then validate, stop
    # run
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    out: str | None = None  # None: a new folder runs/<time>-<algorithm>-<dataset>, linked as runs/latest
    quiet: bool = False
    tensorboard: bool = True  # when the tensorboard package is installed
    log_every: int = 10

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def eval_shape(self) -> tuple[int, int, int]:
        """(ways, shots, queries) of validation and test episodes."""
        return (self.test_ways or self.ways, self.test_shots or self.shots, self.test_queries or self.queries)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def replace(self, **changes) -> TrainConfig:
        return from_dict({**self.to_dict(), **changes})


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
AT_LEAST_ONE = ("ways", "shots", "queries", "meta_batch", "batch_size", "val_every", "val_episodes", "log_every") + (
    "test_ways",
    "test_shots",
    "test_queries",
    "patience",
)
TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict}
TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false", "dict": "a mapping"}
TYPE_NAMES["None"] = "null"
CHOICES = {"optimizer": ("adam", "sgd"), "schedule": ("constant", "cosine", "linear", "step", "hypergradient")}


def _has_type(value, kind: str) -> bool:
    if kind == "None":
        return value is None
    if kind in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[kind])


def check_settings(config: TrainConfig) -> None:
    """One clear error for a setting of the wrong type or out of range (``--set steps=abc``, ``--steps 0``)."""
    for f in fields(config):
        value, kinds = getattr(config, f.name), str(f.type).replace(" ", "").split("|")
        if not any(_has_type(value, k) for k in kinds):
            expected = " or ".join(TYPE_NAMES[k] for k in kinds)
            raise ValueError(f"setting {f.name}={value!r}: expected {expected}")
    c = config
    for name in AT_LEAST_ONE:
        if getattr(c, name) is not None and getattr(c, name) < 1:
            raise ValueError(f"setting {name}={getattr(c, name)!r}: must be at least 1")
    for name in ("steps", "lr", "test_episodes", "warmup", "step_size", "weight_decay", "min_lr"):
        if getattr(c, name) < 0:
            raise ValueError(f"setting {name}={getattr(c, name)!r}: must not be negative")
    if c.hypergradient_lr is not None and c.hypergradient_lr < 0:
        raise ValueError(f"setting hypergradient_lr={c.hypergradient_lr!r}: must not be negative")
    if c.schedule == "hypergradient" and c.warmup:
        raise ValueError("schedule hypergradient learns the rate itself: it takes no warmup (set warmup=0)")
    for name in ("time_limit", "grad_clip"):
        if getattr(c, name) is not None and not getattr(c, name) > 0:
            raise ValueError(f"setting {name}={getattr(c, name)!r}: must be positive")
    for name, valid in CHOICES.items():
        if getattr(c, name) not in valid:
            raise ValueError(f"unknown {name} {getattr(c, name)!r}; valid: {', '.join(valid)}")
    if not DEVICE.fullmatch(c.device):
        raise ValueError(f"device {c.device!r}: valid devices are auto, cpu, cuda, cuda:N, mps")


def from_dict(values: dict, source: str = "config") -> TrainConfig:
    """A ``TrainConfig`` from a mapping; unknown keys are an error naming them."""
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(known)}")
    return TrainConfig(**values)


def presets_dir():
    return resources.files("fewshot") / "presets"


def list_presets() -> list[str]:
    return sorted(p.name.rsplit(".", 1)[0] for p in presets_dir().iterdir() if p.name.endswith((".yaml", ".toml")))


def read_settings(name_or_path: str, _seen: tuple = ()) -> dict:
    """Settings of a preset name (see ``list_presets``) or a YAML / TOML file.

    A file may start from another with ``base: NAME`` (a preset name or a path);
    its own settings win, and ``*_options`` mappings are merged key by key."""
    path = Path(name_or_path)
    if not path.is_file():
        for suffix in (".yaml", ".toml"):
            candidate = presets_dir() / f"{name_or_path}{suffix}"
            if candidate.is_file():
                path = candidate
                break
        else:
            raise FileNotFoundError(
                f"config {name_or_path!r} is neither a file nor a preset; presets: {', '.join(list_presets())}"
            )
    values = _parse(path.read_text(), str(name_or_path))
    base = values.pop("base", None)
    if base is None:
        return values
    sibling = path.parent / str(base)  # a base next to the file wins over a preset of that name
    base_path = str(sibling.resolve()) if sibling.is_file() else str(base)
    seen = (*_seen, str(path.resolve()))
    if base_path in seen or str(base) in seen:
        raise ValueError(f"{name_or_path}: presets form a cycle through {base!r}")
    return merge(read_settings(base_path, seen), values)


def merge(values: dict, overrides: dict) -> dict:
    """``overrides`` on top of ``values``; ``*_options`` mappings merge key by key."""
    out = dict(values)
    for key, value in overrides.items():
        if key.endswith("_options") and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


def _parse(text: str, name: str) -> dict:
    try:
        values = tomllib.loads(text) if name.endswith(".toml") else _yaml(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{name}: not valid {'TOML' if name.endswith('.toml') else 'YAML'}: {e}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{name}: expected a mapping of settings")
    return values


def load_config(name_or_path: str | None = None, **overrides) -> TrainConfig:
    """Defaults, then a preset or file, then overrides (``None`` values are ignored)."""
    values = read_settings(name_or_path) if name_or_path else {}
    values = merge(values, {k: v for k, v in overrides.items() if v is not None})
    return from_dict(values, source=name_or_path or "settings")


def parse_assignment(text: str) -> tuple[str, object]:
    """``key=value`` with a YAML value (``inner_lr=0.4``, ``first_order=true``);
    dotted keys set options: ``algorithm_options.inner_steps=5``."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected key=value, got {text!r}")
    return key.strip(), _yaml(raw)


def parse_overrides(texts: list[str]) -> dict:
    """Settings from ``key=value`` texts (see ``parse_assignment``), dotted keys nested."""
    overrides: dict = {}
    for text in texts:
        key, value = parse_assignment(text)
        head, _, option = key.partition(".")
        if option:
            overrides.setdefault(head, {})[option] = value
        else:
            overrides[key] = value
    return overrides
