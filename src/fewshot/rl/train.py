"""Training runs: a folder with ``config.json``, ``metrics.jsonl``, ``checkpoint/`` (the policy, safetensors
+ JSON), ``last/`` (resumable: policy, outer optimizer, random state, iteration), ``result.json`` and
``curves.png``. Ctrl-C finishes the iteration, saves ``last/`` and stops; ``resume`` continues exactly."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from fewshot.engine.checkpoint import load_state, read_checkpoint, read_training_state, save_checkpoint
from fewshot.engine.signals import stop_on_signals
from fewshot.rl.config import RLConfig, merge
from fewshot.rl.errors import RLError
from fewshot.rl.maml import MetaRL
from fewshot.rl.policy import GaussianMLPPolicy
from fewshot.rl.rollouts import Sampler
from fewshot.rl.tasks import TaskFamily, get_family

KIND = "fewshot.rl.policy"
RESUME_MAY_CHANGE = frozenset({"iterations", "save_every"})


def build(config: RLConfig, seed_offset: int = 0) -> tuple[TaskFamily, Sampler, MetaRL]:
    """The family, a sampler of ``meta_batch x episodes`` environments and the learner of ``config``
    (policy initialised from ``config.seed + seed_offset``)."""
    family = get_family(config.family, **config.family_options)
    sampler = Sampler(family, config.meta_batch * config.episodes, config.vector, oracle=config.method == "oracle")
    torch.manual_seed(config.seed + seed_offset)
    policy = GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, config.hidden, config.activation, config.init_std)
    learner = MetaRL(
        policy,
        inner_lr=config.inner_lr,
        inner_steps=config.train_inner_steps,
        inner_opt=config.inner_opt,
        first_order=config.first_order,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        outer=config.outer,
        max_kl=config.max_kl,
        ppo_clip=config.ppo_clip,
        ppo_epochs=config.ppo_epochs,
        outer_lr=config.outer_lr,
        fisher=config.fisher,
    )
    return family, sampler, learner


class RLTrainer:
    """Meta-trains (or multi-task trains) a policy for ``config.iterations`` iterations into ``run_dir``."""

    def __init__(self, config: RLConfig, run_dir: str | Path, quiet: bool = False) -> None:
        self.config, self.run_dir, self.quiet = config, Path(run_dir), quiet
        self.family, self.sampler, self.learner = build(config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration, self.stop_requested = 0, False

    @classmethod
    def create(cls, config: RLConfig, run_dir: str | Path, quiet: bool = False, overwrite: bool = False) -> RLTrainer:
        run_dir = Path(run_dir)
        if (run_dir / "config.json").exists() and not overwrite:
            raise RLError(f"{run_dir} already holds a run; resume it with --resume or pass --overwrite")
        trainer = cls(config, run_dir, quiet)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text("")
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, changes: dict[str, Any] | None = None, quiet: bool = False) -> RLTrainer:
        """The run in ``run_dir`` as its ``last/`` checkpoint left it; ``changes`` may set only
        ``iterations`` and ``save_every``."""
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise RLError(f"{run_dir}: no run to resume here (no config.json)")
        changes = changes or {}
        if set(changes) - RESUME_MAY_CHANGE:
            raise RLError(
                f"a resume may change only {sorted(RESUME_MAY_CHANGE)}, not {sorted(set(changes) - RESUME_MAY_CHANGE)}"
            )
        config = merge(RLConfig.from_dict(json.loads((run_dir / "config.json").read_text())), changes)
        trainer = cls(config, run_dir, quiet)
        if (run_dir / "last").exists():
            trainer._load_last(run_dir / "last")
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        return trainer

    def _load_last(self, path: Path) -> None:
        _, weights = read_checkpoint(path)
        load_state(self.learner.policy, weights, path)
        state = read_training_state(path)
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        if self.learner.optimizer is not None and state.get("optimizer") is not None:
            self.learner.optimizer.load_state_dict(state["optimizer"])
        with open(self.run_dir / "metrics.jsonl") as f:  # drop lines written after that checkpoint
            lines = [line for line in f if line.strip() and json.loads(line)["iteration"] <= self.iteration]
        (self.run_dir / "metrics.jsonl").write_text("".join(lines))

    def metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": KIND,
            "config": self.config.to_dict(),
            "obs_dim": self.sampler.obs_dim,
            "act_dim": self.sampler.act_dim,
            "family": self.family.describe(),
            "iteration": self.iteration,
            "metrics": metrics,
        }

    def save(self, metrics: dict[str, Any]) -> None:
        weights = self.learner.policy.state_dict()
        state = {
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
            "optimizer": self.learner.optimizer.state_dict() if self.learner.optimizer is not None else None,
        }
        save_checkpoint(self.run_dir / "last", weights, self.metadata(metrics), training_state=state)
        save_checkpoint(self.run_dir / "checkpoint", weights, self.metadata(metrics))

    def run(self) -> dict[str, Any]:
        """Train until ``config.iterations`` (or a Ctrl-C); returns the result (also in ``result.json``)."""
        c, metrics = self.config, {}
        restore = stop_on_signals(self)
        start = time.perf_counter()
        bar = tqdm(total=c.iterations, initial=self.iteration, disable=self.quiet, desc=c.method, unit="it")
        try:
            while self.iteration < c.iterations and not self.stop_requested:
                tasks = self.family.sample_tasks(c.meta_batch, self.generator)
                t0 = time.perf_counter()
                metrics = self.learner.train_step(self.sampler, tasks, c.episodes, self.generator)
                self.iteration += 1
                metrics = {"iteration": self.iteration, **metrics, "seconds": time.perf_counter() - t0}
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(metrics) + "\n")
                bar.update(1)
                bar.set_postfix(pre=f"{metrics['return_pre']:.1f}", post=f"{metrics['return_post']:.1f}")
                if self.iteration % c.save_every == 0 or self.iteration == c.iterations or self.stop_requested:
                    self.save(metrics)
        finally:
            bar.close()
            restore()
            self.sampler.close()
        result = {
            "run": str(self.run_dir),
            "iteration": self.iteration,
            "completed": self.iteration >= c.iterations,
            "seconds": time.perf_counter() - start,
            "final": metrics,
        }
        (self.run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_learning_curves(self.run_dir)
        return result


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_learning_curves(run_dir: str | Path) -> Path | None:
    """``curves.png`` of the run (``fewshot.rl.plots``); nothing when no iteration was logged."""
    from fewshot.rl.plots import plot_learning_curves as plot

    return plot(run_dir) if read_metrics(run_dir) else None


def load_policy(path: str | Path) -> tuple[RLConfig, dict[str, Any], torch.nn.Module]:
    """(config, metadata, policy) of a run folder or its ``checkpoint/``. Never unpickles."""
    path = Path(path)
    folder = path / "checkpoint" if (path / "checkpoint").is_dir() else path
    meta, weights = read_checkpoint(folder)
    if meta.get("kind") != KIND:
        raise RLError(f"{folder}: not a fewshot.rl policy checkpoint (kind {meta.get('kind')!r})")
    config = RLConfig.from_dict(meta["config"])
    policy = GaussianMLPPolicy(meta["obs_dim"], meta["act_dim"], config.hidden, config.activation, config.init_std)
    load_state(policy, weights, folder)
    return config, meta, policy
