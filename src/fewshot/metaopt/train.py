"""Meta-training of a learned rule by truncated backpropagation through the unrolled optimization.

Each outer step takes ``unroll`` steps of the rule on ``meta_batch`` optimizees, from where their
previous truncation stopped (parameters and rule state detached), and differentiates the sum of
the optimizee losses along the unroll, ``sum_{i=1..unroll} f(theta_{s+i})``, with respect to the
rule's parameters; an optimizee is replaced by a new one after ``horizon`` steps. By default the
optimizee's gradients enter the rule as constants (first order, as Andrychowicz et al.);
``second_order: true`` differentiates through them too. Validation runs the rule for ``horizon``
steps on fixed problems of the ``val`` split every ``val_every`` outer steps; the checkpoint
keeps the best (lowest mean loss along the horizon, or mean log-loss with ``log_loss``).

Run folder: ``config.json``, ``metrics.jsonl``, ``checkpoint/`` (the best rule, see
``store.py``) and ``result.json``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fewshot.engine.tracking import RunLogger
from fewshot.metaopt.optimizees import OPTIMIZEES, Optimizee, optimizee_family
from fewshot.metaopt.rules import RULES, LearnedRule
from fewshot.metaopt.store import save_rule
from fewshot.optim import InnerOptimizer

Params = dict[str, Tensor]


@dataclass(frozen=True)
class MetaTrainConfig:
    """Everything a meta-training run depends on; saved as ``config.json``."""

    rule: str = "lstm"  # lstm | mlp (RULES)
    rule_options: dict = field(default_factory=dict)
    optimizee: str = "quadratic"  # OPTIMIZEES
    optimizee_options: dict = field(default_factory=dict)
    horizon: int = 100  # optimizee steps before a new optimizee is drawn
    unroll: int = 20  # steps per truncation (one outer step)
    meta_steps: int = 1000  # outer steps
    meta_batch: int = 1  # optimizees per outer step
    meta_lr: float = 1e-3  # Adam on the rule's parameters
    grad_clip: float | None = None  # clip the meta-gradient's norm
    second_order: bool = False  # differentiate through the optimizee's gradients
    log_loss: bool = False  # meta-loss: the sum of log f (weighs late, small losses as much as early ones)
    val_every: int = 100
    val_problems: int = 4
    seed: int = 0
    time_limit: float | None = None  # wall seconds; then validate and stop
    out: str | None = None
    log_every: int = 50
    quiet: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, str(f.type)):
                raise ValueError(f"config: {f.name} must be {f.type}, got {value!r}")
        for name in ("horizon", "unroll", "meta_steps", "meta_batch", "val_every", "val_problems", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("meta_lr", "grad_clip", "time_limit"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"config: {name} must be a positive number, got {value!r}")
        RULES.check(self.rule)
        OPTIMIZEES.check(self.optimizee)

    def to_dict(self) -> dict:
        return asdict(self)


def _has_type(value: Any, annotation: str) -> bool:
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict, "None": type(None)}
    options = [kinds[a.strip()] for a in annotation.split("|")]
    if isinstance(value, bool) and bool not in options:
        return False
    return any(isinstance(value, k) for k in options)  # type: ignore[arg-type]


def config_from_dict(values: Mapping[str, Any], source: str = "config") -> MetaTrainConfig:
    """A config from a mapping, with one clear error for an unknown key."""
    valid = {f.name for f in fields(MetaTrainConfig)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return MetaTrainConfig(**values)


@dataclass
class MetaTrainResult:
    rule: LearnedRule  # at its best validation
    best_val: float
    best_step: int
    steps: int
    seconds: float
    skipped: int  # outer steps whose meta-gradient was not finite (not applied)
    out: Path | None


def _detach(tree: Any) -> Any:
    if isinstance(tree, Tensor):
        return tree.detach()
    if isinstance(tree, tuple):
        return tuple(_detach(v) for v in tree)
    return tree


def unroll(
    opt: InnerOptimizer,
    optimizee: Optimizee,
    params: Params,
    state: Any,
    start: int,
    length: int,
    second_order: bool = False,
    log_loss: bool = False,
) -> tuple[Tensor, Params, Any]:
    """``length`` steps of ``opt`` on ``optimizee`` from ``params`` (at step ``start``, rule state ``state``):
    the meta-loss ``sum_{i=1..length} f(theta_{start+i})`` (of ``log f`` with ``log_loss``), differentiable
    in the rule's parameters, and the parameters and the state at the end. Without ``second_order`` the
    optimizee's gradients are constants."""
    params = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
    loss = optimizee.loss(params, start)
    total = loss.new_zeros(())
    for i in range(1, length + 1):
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=second_order, retain_graph=True)
        params, state = opt.step(params, dict(zip(params, grads)), state)
        loss = optimizee.loss(params, start + i)
        total = total + (loss.clamp_min(1e-30).log() if log_loss else loss)
    return total, params, state


def run_rule(rule: LearnedRule, optimizee: Optimizee, steps: int) -> list[float]:
    """The minibatch losses ``f(theta_1..theta_steps)`` of ``rule`` on ``optimizee`` (no meta-gradient)."""
    opt = rule.functional({k: v.detach() for k, v in rule.named_parameters()})
    point = {k: v.requires_grad_() for k, v in optimizee.initial_params().items()}
    state = opt.init(point)
    losses = []
    with torch.enable_grad():
        loss = optimizee.loss(point, 0)
        for step in range(1, steps + 1):
            grads = torch.autograd.grad(loss, list(point.values()))
            with torch.no_grad():
                params, state = opt.step({k: v.detach() for k, v in point.items()}, dict(zip(point, grads)), state)
            point = {k: v.detach().requires_grad_() for k, v in params.items()}
            loss = optimizee.loss(point, step)
            losses.append(float(loss.detach()))
    return losses


def validate(rule: LearnedRule, problems: list[Optimizee], steps: int, log_loss: bool = False) -> float:
    """The mean minibatch loss (or log-loss) along ``steps`` steps, averaged over ``problems`` (inf if any
    diverged)."""
    scale = (lambda v: math.log(max(v, 1e-30)) if math.isfinite(v) else math.inf) if log_loss else float
    values = [sum(map(scale, run_rule(rule, o, steps))) / steps for o in problems]
    mean = sum(values) / len(values)
    return mean if math.isfinite(mean) else math.inf


def meta_train(config: MetaTrainConfig, *, overwrite: bool = False, report: Callable[[str], None] | None = None):
    """Meta-train ``config.rule`` on ``config.optimizee`` (see the module docstring); returns a ``MetaTrainResult``."""
    out = Path(config.out) if config.out else None
    if out is not None and (out / "config.json").exists() and not overwrite:
        raise ValueError(f"{out} holds a run; pass --overwrite to replace it")
    torch.manual_seed(config.seed)  # the rule's initial weights
    rule = RULES.build(config.rule, **config.rule_options)
    family = optimizee_family(config.optimizee, "train", config.seed, **config.optimizee_options)
    val_family = optimizee_family(config.optimizee, "val", config.seed, **config.optimizee_options)
    val_set = [val_family.next() for _ in range(config.val_problems)]
    say = report or (lambda text: None if config.quiet else print(text, file=sys.stderr, flush=True))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("result.json", "metrics.jsonl"):
            (out / stale).unlink(missing_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    logger = RunLogger(out, tensorboard=False) if out is not None else None
    meta_opt = torch.optim.Adam(rule.parameters(), lr=config.meta_lr)
    best_val = validate(rule, val_set, config.horizon, config.log_loss)
    best_step, best_state = 0, {k: v.clone() for k, v in rule.state_dict().items()}
    say(f"step 0  val {best_val:.6g}")
    step = skipped = 0
    began = time.perf_counter()
    window: list[float] = []
    running: list[tuple[Optimizee, Params, Any, int]] = []  # optimizee, params, rule state, its step
    while step < config.meta_steps:
        if not running:
            fresh = [family.next() for _ in range(config.meta_batch)]
            running = [(o, o.initial_params(), None, 0) for o in fresh]
        opt = rule.functional(dict(rule.named_parameters()))
        length = min(config.unroll, config.horizon - running[0][3])
        total, carried = torch.zeros(()), []
        for o, params, state, at in running:
            state = opt.init(params) if state is None else state
            loss, params, state = unroll(opt, o, params, state, at, length, config.second_order, config.log_loss)
            total = total + loss / (config.meta_batch * length)
            carried.append((o, {k: v.detach() for k, v in params.items()}, _detach(state), at + length))
        meta_opt.zero_grad(set_to_none=True)
        total.backward()
        grads = [p.grad for p in rule.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(rule.parameters(), config.grad_clip or math.inf)
        if torch.isfinite(norm) and all(torch.isfinite(g).all() for g in grads):
            meta_opt.step()
        else:
            skipped += 1
        value = float(total.detach())
        running = [] if carried[0][3] >= config.horizon or not math.isfinite(value) else carried
        step += 1
        window.append(value)
        timed_out = config.time_limit is not None and time.perf_counter() - began > config.time_limit
        if step % config.log_every == 0 and logger is not None:
            logger.log(step, "train", {"meta_loss": sum(window) / len(window), "skipped": skipped})
            window = []
        if step % config.val_every == 0 or step == config.meta_steps or timed_out:
            val = validate(rule, val_set, config.horizon, config.log_loss)
            if val < best_val:
                best_val, best_step = val, step
                best_state = {k: v.clone() for k, v in rule.state_dict().items()}
            if logger is not None:
                logger.log(step, "val", {"loss": val, "best": best_val})
            say(f"step {step}  val {val:.6g}  best {best_val:.6g} (step {best_step})")
        if timed_out:
            break
    seconds = time.perf_counter() - began
    rule.load_state_dict(best_state)
    if out is not None:
        metrics = {"val_loss": best_val, "best_step": best_step, "steps": step, "seconds": round(seconds, 2)}
        save_rule(out / "checkpoint", rule, training=config.to_dict(), metrics=metrics)
        (out / "result.json").write_text(json.dumps({**metrics, "skipped": skipped}, indent=2) + "\n")
    if logger is not None:
        logger.close()
    return MetaTrainResult(rule, best_val, best_step, step, seconds, skipped, out)
