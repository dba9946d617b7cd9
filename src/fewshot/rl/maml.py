"""MAML for reinforcement learning (Finn et al. 2017) through the functional core.

Inner loop: for each task, ``inner_steps`` policy-gradient steps, each on fresh episodes of the policy
adapted so far: REINFORCE with advantages from a per-task linear feature baseline and GAE, taken by
``fewshot.functional.inner_loop`` with any inner optimizer (``sgd``, ``adam``, a learned one). Outer loop:
the surrogate of the adapted policies on their own post-update episodes, as a function of the initial
parameters (second order unless ``first_order``), stepped by TRPO (as the paper) or the PPO clipped
objective (ProMP-like). ``inner_steps=0`` is multi-task training of one policy (the pretrained baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fewshot.functional import TaskBatcher, detach, inner_loop, parameters
from fewshot.functional.params import Params
from fewshot.optim import InnerOptimizer, get_inner_optimizer
from fewshot.registry import INNER_OPTIMIZERS
from fewshot.rl.errors import RLError
from fewshot.rl.objectives import normalize, ppo_clip_objective, reinforce_loss, surrogate, trpo_step
from fewshot.rl.policy import distribution, kl_divergence, log_prob
from fewshot.rl.returns import discounted_returns, fit_linear_baseline, gae
from fewshot.rl.rollouts import Rollouts, Sampler
from fewshot.rl.tasks import Task

OUTER = ("trpo", "ppo")
FISHER = ("first_order", "full")  # TRPO's KL curvature: through the adapted parameters only, or the whole inner loop


@dataclass(frozen=True)
class StepData:
    """One batch of episodes per task as the inner and outer losses read it, task axis first."""

    obs: Tensor  # [B, T, K, D]
    actions: Tensor  # [B, T, K, A]
    advantages: Tensor  # [B, T, K]
    mask: Tensor  # [B, T, K]
    logp_old: Tensor  # [B, T, K] log-probability under the acting policy
    mean_old: Tensor  # [B, T, K, A]
    log_std_old: Tensor  # [B, T, K, A]

    @staticmethod
    def stack(steps: Sequence[StepData], num_tasks: int) -> tuple[Tensor, ...]:
        """Per-field tensors [B, S, ...] over ``S`` steps (S may be 0)."""
        if not steps:
            return tuple(torch.zeros(num_tasks, 0) for _ in range(7))
        return tuple(torch.stack([getattr(s, f) for s in steps], 1) for f in StepData.__dataclass_fields__)


def advantages(rollouts: Rollouts, gamma: float, lam: float, normalized: bool = True) -> Tensor:
    """GAE over a per-task linear feature baseline fitted to the discounted returns: [T, E]."""
    T, E = rollouts.rewards.shape
    B, K = rollouts.num_tasks, rollouts.episodes
    returns = discounted_returns(rollouts.rewards, rollouts.mask, gamma)  # [T, E]
    grouped = lambda x: x.view(T, B, K, *x.shape[2:])  # noqa: E731  [T, E, ...] -> [T, B, K, ...]
    values = fit_linear_baseline(grouped(rollouts.obs), grouped(returns), grouped(rollouts.mask)).view(T, E)
    adv = gae(rollouts.rewards, values, rollouts.mask, gamma, lam)  # [T, E]
    if normalized:  # per task
        adv = torch.stack(
            [normalize(a, m) for a, m in zip(grouped(adv).unbind(1), grouped(rollouts.mask).unbind(1))], 1
        )
        adv = adv.view(T, E)
    return adv


def step_data(rollouts: Rollouts, gamma: float, lam: float, normalized: bool = True) -> StepData:
    adv = advantages(rollouts, gamma, lam, normalized)
    logp = log_prob(rollouts.mean, rollouts.log_std, rollouts.actions)  # [T, E]
    f = rollouts.per_task
    return StepData(
        f(rollouts.obs), f(rollouts.actions), f(adv), f(rollouts.mask), f(logp), f(rollouts.mean), f(rollouts.log_std)
    )


def _inner_optimizer(inner_opt: Any, lr: float) -> Any:
    """``get_inner_optimizer``, with a registered name built as ``factory(lr)`` (the registry's ``build`` now
    asks for ``lr`` as a keyword although the factories take it positionally)."""
    if isinstance(inner_opt, str):
        try:
            return INNER_OPTIMIZERS.get(inner_opt)(lr)
        except ValueError as e:
            raise RLError(str(e)) from None
    return get_inner_optimizer(inner_opt, lr)


class _Constant:
    """An optimizer ``init`` that returns a carried state: the next ``inner_loop`` call resumes the last one's."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def __call__(self, params: Params) -> Any:
        return self.state


class MetaRL:
    """MAML-RL over a Gaussian policy: ``adapt`` (the inner loop), ``meta_objective`` and ``outer_step``.

    ``inner_opt``: an ``InnerOptimizer`` value, a module with ``functional(own_params)`` (its parameters
    are meta-learned with the policy's), a registered name, or None for ``sgd(inner_lr)``."""

    def __init__(
        self,
        policy: nn.Module,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        inner_opt: Any = None,
        first_order: bool = False,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        outer: str = "trpo",
        max_kl: float = 0.01,
        ppo_clip: float = 0.2,
        ppo_epochs: int = 5,
        outer_lr: float = 1e-3,
        fisher: str = "first_order",
    ) -> None:
        if outer not in OUTER:
            raise RLError(f"outer must be one of {OUTER}, got {outer!r}")
        if fisher not in FISHER:
            raise RLError(f"fisher must be one of {FISHER}, got {fisher!r}")
        if inner_steps < 0:
            raise RLError(f"inner_steps must be >= 0, got {inner_steps}")
        self.policy, self.inner_steps, self.inner_lr, self.first_order = policy, inner_steps, inner_lr, first_order
        self.inner_opt = _inner_optimizer(inner_opt, inner_lr)
        self.gamma, self.gae_lambda, self.outer, self.fisher = gamma, gae_lambda, outer, fisher
        self.max_kl, self.ppo_clip, self.ppo_epochs = max_kl, ppo_clip, ppo_epochs
        self.optimizer = torch.optim.Adam(self.outer_params(), lr=outer_lr) if outer == "ppo" else None
        self._adapt = TaskBatcher(self._adapt_task, num_shared=2, mode="loop")
        self._objective = TaskBatcher(self._task_objective, num_shared=2, mode="loop")

    # --- the inner loop -------------------------------------------------------------------------------
    def outer_params(self) -> list[Tensor]:
        learned: list[Tensor] = list(self.inner_opt.parameters()) if isinstance(self.inner_opt, nn.Module) else []
        return [*self.policy.parameters(), *learned]

    def _optimizer(self, opt_params: Params) -> InnerOptimizer:
        if isinstance(self.inner_opt, nn.Module):
            return self.inner_opt.functional(opt_params)  # type: ignore[operator]
        return self.inner_opt

    def opt_params(self, detached: bool = False) -> Params:
        if not isinstance(self.inner_opt, nn.Module):
            return {}
        own: Params = dict(self.inner_opt.named_parameters())
        return detach(own) if detached else own

    def task_loss(self, params: Params, obs: Tensor, actions: Tensor, adv: Tensor, mask: Tensor) -> Tensor:
        """The inner loss of one task: REINFORCE on obs [T, K, D], actions [T, K, A], adv and mask [T, K]."""
        mean, log_std = distribution(self.policy, params, obs)
        return reinforce_loss(log_prob(mean, log_std, actions), adv, mask)

    def _adapt_task(self, params: Params, opt_params: Params, obs, actions, adv, mask, *_old) -> Params:
        """``inner_steps`` steps of one task, step s on its batch s (obs [S, T, K, D] ...)."""
        opt, state = self._optimizer(opt_params), None
        for s in range(obs.shape[0]):
            resumed = opt if state is None else InnerOptimizer(_Constant(state), opt.step)
            params, _, state = inner_loop(
                self.task_loss, params, obs[s], actions[s], adv[s], mask[s],
                steps=1, optimizer=resumed, first_order=self.first_order, return_state=True,
            )  # fmt: skip
        return params

    def adapt(
        self, params: Params, steps: Sequence[StepData], num_tasks: int, opt_params: Params | None = None
    ) -> Params:
        """Every task's adapted parameters after ``len(steps)`` inner steps, stacked [B, ...]."""
        if not steps:
            return {k: v.expand(num_tasks, *v.shape) for k, v in params.items()}
        opt_params = self.opt_params() if opt_params is None else opt_params
        return self._adapt(params, opt_params, *StepData.stack(steps, num_tasks))

    # --- sampling -------------------------------------------------------------------------------------
    def sample(
        self, sampler: Sampler, tasks: list[Task], episodes: int, generator: torch.Generator, steps: int | None = None
    ) -> tuple[list[StepData], Rollouts, list[Rollouts]]:
        """Episodes before each inner step and after the last: (inner step data, post-update rollouts,
        all rollouts in order). The adaptation here carries no graph."""
        steps = self.inner_steps if steps is None else steps
        theta, opt_params = detach(parameters(self.policy)), self.opt_params(detached=True)
        inner: list[StepData] = []
        batches: list[Rollouts] = []
        current, per_task = theta, False
        for s in range(steps + 1):
            batch = sampler.collect(self.policy, current, tasks, episodes, generator, per_task=per_task)
            batches.append(batch)
            if s == steps:
                break
            inner.append(step_data(batch, self.gamma, self.gae_lambda))
            with torch.no_grad():
                current = detach(self.adapt(theta, inner, len(tasks), opt_params))
            per_task = True
        return inner, batches[-1], batches

    # --- the outer loop -------------------------------------------------------------------------------
    def _task_objective(self, params: Params, opt_params: Params, *tensors: Tensor) -> tuple[Tensor, Tensor]:
        inner, outer = tensors[:7], tensors[7:]
        adapted = self._adapt_task(params, opt_params, *inner) if inner[0].shape[0] else params
        obs, actions, adv, mask, logp_old, mean_old, log_std_old = outer
        mean, log_std = distribution(self.policy, adapted, obs)
        logp = log_prob(mean, log_std, actions)  # [T, K]
        if self.outer == "ppo":
            objective = ppo_clip_objective(logp, logp_old, adv, mask, self.ppo_clip)
        else:
            objective = surrogate(logp, logp_old, adv, mask)
        if self.fisher == "first_order" and inner[0].shape[0]:
            # the same values; derivatives as if the adapted parameters moved with the initial ones one for one
            shifted = {k: p + (adapted[k] - p).detach() for k, p in params.items()}
            mean, log_std = distribution(self.policy, shifted, obs)
        kl = kl_divergence(mean_old, log_std_old, mean, log_std.expand_as(mean))  # [T, K]
        return objective, (kl * mask).sum() / mask.sum()

    def meta_objective(self, inner: Sequence[StepData], outer: StepData) -> tuple[Tensor, Tensor]:
        """(mean over tasks of the outer objective, mean KL from the acting policies), as functions of the
        policy's (and a learned inner optimizer's) parameters."""
        B = outer.obs.shape[0]
        fields = [getattr(outer, f) for f in StepData.__dataclass_fields__]
        objective, kl = self._objective(parameters(self.policy), self.opt_params(), *StepData.stack(inner, B), *fields)
        return objective.mean(), kl.mean()

    def outer_step(self, inner: Sequence[StepData], outer: StepData) -> dict[str, float]:
        """One TRPO step, or ``ppo_epochs`` Adam steps on the clipped objective."""
        if self.outer == "trpo":
            return trpo_step(self.outer_params(), lambda: self.meta_objective(inner, outer), self.max_kl)
        assert self.optimizer is not None
        first = None
        for _ in range(self.ppo_epochs):
            objective, kl = self.meta_objective(inner, outer)
            first = float(objective.detach()) if first is None else first
            self.optimizer.zero_grad()
            (-objective).backward()
            self.optimizer.step()
        with torch.no_grad():
            objective, kl = self.meta_objective(inner, outer)
        return {"surrogate_before": first or 0.0, "surrogate_after": float(objective), "kl": float(kl)}

    def train_step(self, sampler: Sampler, tasks: list[Task], episodes: int, generator: torch.Generator) -> dict:
        """Sample, adapt, step: one meta-iteration. Returns its metrics (mean returns before and after)."""
        inner, post, batches = self.sample(sampler, tasks, episodes, generator)
        stats = self.outer_step(inner, step_data(post, self.gamma, self.gae_lambda))
        stats["return_pre"] = float(batches[0].task_returns().mean())
        stats["return_post"] = float(post.task_returns().mean())
        stats["env_steps"] = float(sum(b.steps() for b in batches))
        return stats

    def adaptation_returns(
        self, sampler: Sampler, tasks: list[Task], episodes: int, steps: int, generator: torch.Generator
    ) -> Tensor:
        """Mean episode return of each task after 0..steps inner steps: [B, steps + 1]."""
        _, _, batches = self.sample(sampler, tasks, episodes, generator, steps=steps)
        return torch.stack([b.task_returns() for b in batches], 1)
