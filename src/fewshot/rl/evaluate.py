"""Adaptation curves: mean return after 0, 1, 2, ... inner steps on held-out tasks, with 95% intervals
over tasks (the MAML paper's figures)."""

from __future__ import annotations

from typing import Any

import torch

from fewshot.engine.evaluate import confidence_interval
from fewshot.rl.config import RLConfig
from fewshot.rl.maml import MetaRL
from fewshot.rl.rollouts import Sampler
from fewshot.rl.tasks import Task, TaskFamily

EVAL_SEED = 1_000_003  # task draws for evaluation: a stream apart from training's


def held_out_tasks(family: TaskFamily, n: int, seed: int = EVAL_SEED) -> list[Task]:
    return family.sample_tasks(n, torch.Generator().manual_seed(seed))


def adaptation_curve(
    policy: torch.nn.Module,
    config: RLConfig,
    sampler: Sampler,
    tasks: list[Task],
    adapt_steps: list[int],
    episodes: int | None = None,
    seed: int = EVAL_SEED,
) -> dict[str, Any]:
    """``{"steps": {"k": {"mean", "ci95"}}, "per_task": [[...]]}``: the policy adapted with the config's inner
    rule for each ``k`` in ``adapt_steps`` on each task (the same episodes serve every ``k``)."""
    learner = MetaRL(
        policy, inner_lr=config.inner_lr, inner_steps=0, inner_opt=config.inner_opt, first_order=True,
        gamma=config.gamma, gae_lambda=config.gae_lambda,
    )  # fmt: skip
    episodes = episodes or config.episodes
    returns = learner.adaptation_returns(
        sampler, tasks, episodes, max(adapt_steps), torch.Generator().manual_seed(seed)
    )  # [N, max + 1]
    return {
        "tasks": len(tasks),
        "episodes": episodes,
        "steps": {
            str(k): {"mean": float(returns[:, k].mean()), "ci95": confidence_interval(returns[:, k])}
            for k in adapt_steps
        },
        "per_task": returns.tolist(),
    }
