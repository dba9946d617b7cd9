"""Rollout collection batched over tasks and environments.

``Sampler`` owns one gymnasium vector environment of ``num_envs`` sub-environments (the numpy batch for
point navigation; MuJoCo environments stepped in this process or in worker processes) and fills it with
``tasks x episodes`` episodes at a time: episode ``e`` of a batch belongs to task ``e // episodes``. The
policy acts for all of them in one call per step, with parameters per task ([B, ...] stacked, vmapped).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor, nn

from fewshot.functional.params import Params
from fewshot.rl.errors import RLError
from fewshot.rl.policy import distribution, sample
from fewshot.rl.tasks import Task, TaskFamily


@dataclass
class Rollouts:
    """Time-major trajectories of ``tasks x episodes`` episodes (E = B * K), with what the acting policy said."""

    obs: Tensor  # [T, E, D] (with the task features appended for an oracle)
    actions: Tensor  # [T, E, A] as sampled (before the environment clips them)
    rewards: Tensor  # [T, E]
    mask: Tensor  # [T, E] 1 while the episode runs
    mean: Tensor  # [T, E, A] the acting policy's mean
    log_std: Tensor  # [T, E, A] and log std
    episodes: int  # K episodes per task

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[1] // self.episodes

    def returns(self) -> Tensor:
        """Undiscounted return of each episode: [E]."""
        return (self.rewards * self.mask).sum(0)

    def task_returns(self) -> Tensor:
        """Mean episode return per task: [B]."""
        return self.returns().view(self.num_tasks, self.episodes).mean(1)

    def per_task(self, x: Tensor) -> Tensor:
        """[T, E, ...] -> [B, T, K, ...]: the task axis first, as the functional core batches it."""
        return x.view(x.shape[0], self.num_tasks, self.episodes, *x.shape[2:]).transpose(0, 1)

    def steps(self) -> int:
        return int(self.mask.sum())

    @staticmethod
    def cat(parts: list[Rollouts]) -> Rollouts:
        """Join batches of the same horizon along the episode axis."""
        if len(parts) == 1:
            return parts[0]
        joined = {
            f.name: torch.cat([getattr(p, f.name) for p in parts], 1) for f in fields(Rollouts) if f.name != "episodes"
        }
        return Rollouts(**joined, episodes=parts[0].episodes)


class Sampler:
    """Collects episodes of a family's tasks with a policy, ``num_envs`` environments at a time."""

    def __init__(self, family: TaskFamily, num_envs: int, mode: str = "sync", oracle: bool = False) -> None:
        if num_envs < 1:
            raise RLError(f"num_envs must be >= 1, got {num_envs}")
        self.family, self.num_envs, self.mode, self.oracle = family, num_envs, mode, oracle
        self.env = family.make_vector_env(num_envs, mode)
        self.obs_dim = int(np.prod(self.env.single_observation_space.shape)) + (len(family.params) if oracle else 0)
        self.act_dim = int(np.prod(self.env.single_action_space.shape))
        self.horizon = family.horizon
        self.low, self.high = self.env.single_action_space.low, self.env.single_action_space.high

    def close(self) -> None:
        self.env.close()

    def collect(
        self,
        policy: nn.Module,
        params: Params,
        tasks: list[Task],
        episodes: int,
        generator: torch.Generator,
        per_task: bool = False,
    ) -> Rollouts:
        """``episodes`` episodes of each task. ``params``: one dict for all tasks, or (``per_task``) a dict of
        [B, ...] tensors, row b for ``tasks[b]``. Seeds of the environments and the action noise come from
        ``generator``."""
        if self.num_envs % episodes:
            raise RLError(f"num_envs={self.num_envs} must be a multiple of episodes={episodes}")
        chunk = self.num_envs // episodes
        parts = []
        for start in range(0, len(tasks), chunk):
            sub = tasks[start : start + chunk]
            sub_params = {k: v[start : start + chunk] for k, v in params.items()} if per_task else params
            parts.append(self._collect(policy, sub_params, sub, episodes, generator, per_task))
        return Rollouts.cat(parts)

    @torch.no_grad()
    def _collect(self, policy, params, tasks, episodes, generator, per_task) -> Rollouts:
        B, E, T = len(tasks), len(tasks) * episodes, self.horizon
        padded = [tasks[e // episodes] if e < E else tasks[-1] for e in range(self.num_envs)]  # [num_envs]
        self.env.set_attr("task", padded)
        seed = int(torch.randint(2**31 - self.num_envs, (), generator=generator))
        obs_np, _ = self.env.reset(seed=seed)
        extra = None
        if self.oracle:
            extra = torch.tensor([self.family.features(t) for t in padded], dtype=torch.float32)  # [N, P]
        if per_task:
            act = torch.func.vmap(lambda p, o: distribution(policy, p, o))  # ([B, ...], [B, K, D]) -> [B, K, A]
        obs_t, act_t, rew_t, mask_t, mean_t, std_t = [], [], [], [], [], []
        alive = torch.ones(E)
        for _ in range(T):
            obs = torch.as_tensor(np.asarray(obs_np), dtype=torch.float32).reshape(self.num_envs, -1)[:E]  # [E, D]
            if extra is not None:
                obs = torch.cat([obs, extra[:E]], 1)
            if per_task:
                mean, log_std = act(params, obs.view(B, episodes, -1))  # [B, K, A], [B, A]
                mean, log_std = mean.reshape(E, -1), log_std.repeat_interleave(episodes, 0)  # [E, A]
            else:
                mean, log_std = distribution(policy, params, obs)
                log_std = log_std.expand_as(mean)  # [E, A]
            action = sample(mean, log_std, generator)  # [E, A]
            full = np.zeros((self.num_envs, self.act_dim), np.float32)
            full[:E] = np.clip(action.numpy(), self.low, self.high)  # the log-probabilities keep the sampled ones
            obs_np, reward, terminated, truncated, _ = self.env.step(full.reshape(self.env.action_space.shape))
            obs_t.append(obs)
            act_t.append(action)
            rew_t.append(torch.as_tensor(np.asarray(reward)[:E], dtype=torch.float32))
            mask_t.append(alive.clone())
            mean_t.append(mean)
            std_t.append(log_std)
            alive = alive * torch.as_tensor(~np.asarray(terminated)[:E], dtype=torch.float32)
        batch = Rollouts(
            torch.stack(obs_t), torch.stack(act_t), torch.stack(rew_t), torch.stack(mask_t),
            torch.stack(mean_t), torch.stack(std_t), episodes,
        )  # fmt: skip
        for name in ("obs", "rewards"):
            values = getattr(batch, name)
            if not torch.isfinite(values).all():
                bad = int((~torch.isfinite(values)).reshape(T, E, -1).any(-1).any(0).nonzero()[0]) // episodes
                raise RLError(f"non-finite {name} in a rollout of task {tasks[bad].to_dict()}")
        return batch


def collect_single(
    family: TaskFamily, policy: nn.Module, params: Params, task: Task, episodes: int, seed: int
) -> float:
    """The plain loop the batched sampler is measured against: one environment, one policy call per step.
    Returns the mean episode return."""
    env = family.make_env(task)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                mean, log_std = distribution(policy, params, torch.as_tensor(obs, dtype=torch.float32))
                action = sample(mean, log_std.expand_as(mean), g)
                clipped = np.clip(action.numpy(), env.action_space.low, env.action_space.high)
                obs, reward, terminated, truncated, _ = env.step(clipped)
                total += float(reward)
                done = bool(terminated or truncated)
    env.close()
    return total / episodes
