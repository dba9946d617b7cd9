"""Settings of an RL run: one dataclass, presets by name, ``--set KEY=VALUE`` overrides, all checked."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fewshot.rl.errors import RLError

METHODS = ("maml", "pretrained", "oracle")
# sync: in this process; async: a worker process per environment; ray: Ray actors (a few environments each)
# on the cluster Ray finds (RAY_ADDRESS, or a new local one), the policy staying in this process
VECTOR_MODES = ("sync", "async", "ray")


@dataclass
class RLConfig:
    """What a run trains and how. ``method``: ``maml`` (meta-trained initialisation), ``pretrained``
    (one policy trained on all tasks, fine-tuned at test time with the same inner steps) or ``oracle``
    (a policy that sees the task parameters)."""

    family: str = "pointnav"
    family_options: dict[str, Any] = field(default_factory=dict)  # horizon, ...
    method: str = "maml"
    hidden: list[int] = field(default_factory=lambda: [100, 100])
    activation: str = "relu"
    init_std: float = 1.0
    inner_lr: float = 0.1
    inner_steps: int = 1
    inner_opt: str = "sgd"
    first_order: bool = False
    meta_batch: int = 20  # tasks per iteration
    episodes: int = 20  # episodes per task and inner step
    iterations: int = 100
    outer: str = "trpo"  # trpo | ppo
    max_kl: float = 0.01
    fisher: str = "first_order"
    ppo_clip: float = 0.2
    ppo_epochs: int = 5
    outer_lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 1.0
    vector: str = "sync"  # sync | async (MuJoCo environments in worker processes) | ray (Ray actors)
    seed: int = 0
    save_every: int = 10

    def __post_init__(self) -> None:
        checks = [
            (self.method in METHODS, f"method must be one of {METHODS}"),
            (self.outer in ("trpo", "ppo"), "outer must be 'trpo' or 'ppo'"),
            (self.fisher in ("first_order", "full"), "fisher must be 'first_order' or 'full'"),
            (self.vector in VECTOR_MODES, f"vector must be one of {VECTOR_MODES}"),
            (self.activation in ("relu", "tanh"), "activation must be 'relu' or 'tanh'"),
            (self.inner_steps >= 0, "inner_steps must be >= 0"),
            (min(self.meta_batch, self.episodes, self.iterations, self.save_every) >= 1,
             "meta_batch, episodes, iterations and save_every must be >= 1"),
            (all(h >= 1 for h in self.hidden), "hidden sizes must be >= 1"),
            (self.inner_lr >= 0 and self.max_kl > 0 and self.outer_lr > 0 and self.init_std > 0,
             "inner_lr must be >= 0; max_kl, outer_lr and init_std > 0"),
            (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1, "gamma and gae_lambda must be in [0, 1]"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise RLError(f"{message}; got {self.to_dict()}")

    @property
    def train_inner_steps(self) -> int:
        """Inner steps during training: only MAML adapts while it trains."""
        return self.inner_steps if self.method == "maml" else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> RLConfig:
        return merge(RLConfig(), values)


def _coerce(name: str, value: Any, current: Any) -> Any:
    """``value`` as the type of the field's current value, or one error naming the field."""
    kind = type(current)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is list:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
    elif kind is dict:
        if isinstance(value, dict):
            return dict(value)
    elif isinstance(value, kind):
        return value
    raise RLError(f"setting {name} must be {kind.__name__}, got {value!r}")


def merge(config: RLConfig, values: dict[str, Any]) -> RLConfig:
    """``config`` with ``values`` (``family_options.horizon`` reaches into the options dict)."""
    names = {f.name for f in dataclasses.fields(RLConfig)}
    out = config.to_dict()
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise RLError(f"unknown setting {head!r}; valid: {', '.join(sorted(names))}")
        if rest:
            if head != "family_options":
                raise RLError(f"setting {head} has no sub-settings (got {key!r})")
            out[head] = {**out[head], rest: value}
        else:
            out[head] = _coerce(key, value, out[head])
    return RLConfig(**out)


_POINTNAV: dict[str, Any] = {"family": "pointnav", "inner_lr": 0.1, "meta_batch": 20, "episodes": 20, "iterations": 100}
_CHEETAH: dict[str, Any] = {
    "inner_lr": 0.1,
    "meta_batch": 10,
    "episodes": 10,
    "iterations": 50,
    "family_options": {"horizon": 100},
    "hidden": [64, 64],
}
PRESETS: dict[str, dict[str, Any]] = {}
for _method in METHODS:
    PRESETS[f"pointnav-{_method}"] = {**_POINTNAV, "method": _method}
    PRESETS[f"cheetah-vel-{_method}"] = {**_CHEETAH, "family": "cheetah-vel", "method": _method}
    PRESETS[f"cheetah-dir-{_method}"] = {**_CHEETAH, "family": "cheetah-dir", "method": _method}


def preset(name: str, overrides: dict[str, Any] | None = None) -> RLConfig:
    """The preset ``name`` with ``overrides``; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise RLError(f"unknown preset {name!r}; valid: {', '.join(sorted(PRESETS))}")
    return merge(RLConfig(), {**PRESETS[name], **(overrides or {})})
