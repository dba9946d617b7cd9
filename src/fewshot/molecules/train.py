"""A small meta-training loop over a task family, keeping the weights that validate best.

``MetaTrainer`` holds everything a run needs to continue where it stopped (optimizer state,
the episode generator, the step, the best validation score and its weights, the log);
``state_dict`` / ``load_state_dict`` move it in and out of a checkpoint. Episodes are drawn on the
CPU (the same episodes on every device) and moved to ``device``, where the algorithm must be.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from fewshot.algorithms.base import Algorithm
from fewshot.data.episode import Episode

logger = logging.getLogger(__name__)


class TaskFamily(Protocol):
    def sample_tasks(self, n: int, shots: int, queries: int, generator: torch.Generator) -> Episode: ...


Validator = Callable[[Algorithm], float]
"""``validate(algorithm) -> score``, higher is better."""


class MetaTrainer:
    """Adam on ``algorithm.meta_loss`` of episodes ``family.sample_tasks(batch_size, shots, queries)``,
    each moved to ``device`` (the algorithm's; move it there before building the trainer)."""

    def __init__(
        self,
        algorithm: Algorithm,
        family: TaskFamily,
        *,
        shots: int,
        queries: int,
        batch_size: int = 8,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self.algorithm, self.family, self.device = algorithm, family, torch.device(device)
        self.shots, self.queries, self.batch_size = shots, queries, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer = torch.optim.Adam(algorithm.parameters(), lr=lr, weight_decay=weight_decay)
        self.step = 0
        self.best = -float("inf")
        self.best_state: dict[str, Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self.seconds = 0.0  # training time over all sessions of this run

    def validate(self, validate: Validator) -> float:
        self.algorithm.eval()
        score = validate(self.algorithm)
        self.algorithm.train()
        self.history.append({"step": self.step, "valid": score, "seconds": self.seconds})
        logger.info("step %d: validation %.4f", self.step, score)
        if score > self.best:
            self.best = score
            self.best_state = copy.deepcopy(self.algorithm.state_dict())
        return score

    def run(
        self,
        steps: int,
        *,
        validate: Validator | None = None,
        validate_every: int = 500,
        time_limit: float | None = None,
        log_every: int = 100,
        checkpoint: Callable[[MetaTrainer], None] | None = None,
        checkpoint_every: int | None = None,
    ) -> bool:
        """Train until step ``steps`` (counted over all sessions); True when it got there.

        ``validate`` runs at step 0 (the starting point competes too, which matters for warm
        starts), every ``validate_every`` steps and at the end. ``time_limit`` (seconds, this
        session) stops early. ``checkpoint(self)`` runs every ``checkpoint_every`` steps.
        """
        started, at_start = time.perf_counter(), self.seconds
        if validate is not None and self.step == 0 and not self.history:
            self.validate(validate)
        self.algorithm.train()
        while self.step < steps:
            episode = self.family.sample_tasks(self.batch_size, self.shots, self.queries, self.generator)
            if self.device.type != "cpu":
                episode = episode.to(self.device)
            loss, metrics = self.algorithm.meta_loss(episode)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            self.seconds = at_start + time.perf_counter() - started
            if self.step % log_every == 0:
                self.history.append({"step": self.step, **metrics, "seconds": self.seconds})
                logger.info("step %d: loss %.4f accuracy %.3f", self.step, metrics["loss"], metrics.get("accuracy", 0))
            if validate is not None and self.step % validate_every == 0:
                self.validate(validate)
            if checkpoint is not None and checkpoint_every and self.step % checkpoint_every == 0:
                checkpoint(self)
            if time_limit is not None and time.perf_counter() - started > time_limit:
                logger.info("time limit reached at step %d", self.step)
                break
        last = next((h for h in reversed(self.history) if "valid" in h), None)
        if validate is not None and (last is None or last["step"] != self.step):
            self.validate(validate)
        return self.step >= steps

    def best_weights(self) -> dict[str, Tensor]:
        """The weights that validated best (the current ones without validation)."""
        return self.best_state if self.best_state is not None else self.algorithm.state_dict()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue (the best weights are stored with the run's checkpoint)."""
        state = {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "best": self.best,
            "history": self.history,
            "seconds": self.seconds,
        }
        if self.device.type == "cuda":  # dropout masks on the GPU come from its own generator
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any], best_state: dict[str, Tensor] | None) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.step, self.best, self.seconds = int(state["step"]), float(state["best"]), float(state["seconds"])
        self.history = [dict(h) for h in state["history"]]
        self.best_state = best_state


def meta_train(
    algorithm: Algorithm,
    family: TaskFamily,
    *,
    steps: int,
    shots: int,
    queries: int,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    validate: Validator | None = None,
    validate_every: int = 500,
    time_limit: float | None = None,
    log_every: int = 100,
) -> list[dict]:
    """Train ``steps`` steps (``MetaTrainer.run``), load the best weights back; returns the log."""
    trainer = MetaTrainer(
        algorithm,
        family,
        shots=shots,
        queries=queries,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
    )
    trainer.run(steps, validate=validate, validate_every=validate_every, time_limit=time_limit, log_every=log_every)
    if trainer.best_state is not None:
        algorithm.load_state_dict(trainer.best_state)
    algorithm.eval()
    return trainer.history
