"""Rollout collection batched over tasks and environments.

``Sampler`` owns one gymnasium vector environment of ``num_envs`` sub-environments (the numpy batch for
point navigation; MuJoCo environments stepped in this process, in worker processes, or by Ray actors on the
machines of a Ray cluster, ``RayVectorEnv``) and fills it with
``tasks x episodes`` episodes at a time: episode ``e`` of a batch belongs to task ``e // episodes``. The
policy acts for all of them in one call per step, with parameters per task ([B, ...] stacked, vmapped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

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

    def __init__(
        self,
        family: TaskFamily,
        num_envs: int,
        mode: str = "sync",
        oracle: bool = False,
        envs_per_actor: int | None = None,
        address: str | None = None,
    ) -> None:
        """``mode``: ``sync`` (this process), ``async`` (a worker process per environment) or ``ray`` (Ray
        actors of ``envs_per_actor`` environments each on the cluster at ``address``; see ``RayVectorEnv``)."""
        if num_envs < 1:
            raise RLError(f"num_envs must be >= 1, got {num_envs}")
        self.family, self.num_envs, self.mode, self.oracle = family, num_envs, mode, oracle
        if mode == "ray":
            self.env: Any = RayVectorEnv(family, num_envs, envs_per_actor, address)
        else:
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


START_TIMEOUT = 300  # seconds for the actors to start
RAY_HINT = "vector=ray needs Ray: pip install 'fewshot[nas]' (or ray)"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RLError(RAY_HINT) from None
    return ray


class EnvWorker:
    """The body of one Ray actor: ``family.make_vector_env(num_envs, "sync")``, stepped on request."""

    def __init__(self, family: TaskFamily, num_envs: int) -> None:
        self.env = family.make_vector_env(num_envs, "sync")

    def set_tasks(self, tasks: list[Task]) -> None:
        self.env.set_attr("task", tasks)

    def reset(self, seed: int | None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        return np.asarray(obs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        obs, reward, terminated, truncated, _ = self.env.step(actions)
        return np.asarray(obs), np.asarray(reward), np.asarray(terminated), np.asarray(truncated)

    def node(self) -> str:
        return str(_import_ray().get_runtime_context().get_node_id())

    def close(self) -> None:
        self.env.close()


class RayVectorEnv:
    """``num_envs`` environments stepped by Ray actors, ``envs_per_actor`` each (default: one actor per CPU
    of the cluster that is free), while the policy stays in the calling process.

    The part of the gymnasium vector-environment interface the ``Sampler`` uses (``set_attr("task", ...)``,
    ``reset(seed=)``, ``step``, the spaces, ``close``). Actor ``j`` holds environments ``o_j .. o_j + n_j - 1``
    and resets them with ``seed + o_j`` (a gymnasium vector environment seeds its environment ``i`` with
    ``seed + i``), so a seed gives the same episodes as the in-process vector environment. Actors are placed
    with Ray's ``SPREAD`` strategy, each asking for an equal share of the free CPUs (at most one), so they
    never wait for resources. ``address``: a running cluster (``None``: the one Ray finds, e.g. through
    ``RAY_ADDRESS``, or a new local one); a session already started with ``ray.init`` is used as it is."""

    def __init__(
        self, family: TaskFamily, num_envs: int, envs_per_actor: int | None = None, address: str | None = None
    ) -> None:
        if envs_per_actor is not None and envs_per_actor < 1:
            raise RLError(f"envs_per_actor must be >= 1, got {envs_per_actor}")
        ray = _import_ray()
        from gymnasium.vector.utils import batch_space

        probe = family.make_vector_env(1, "sync")  # the spaces, and one clear error here if the family cannot load
        self.single_observation_space = probe.single_observation_space
        self.single_action_space = probe.single_action_space
        probe.close()
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise RLError(f"vector=ray could not start or join a Ray cluster (address {address!r}): {e}") from None
        self.ray = ray
        free = float(ray.available_resources().get("CPU", 0.0))
        actors = math.ceil(num_envs / envs_per_actor) if envs_per_actor else max(1, min(num_envs, int(free)))
        sizes = [num_envs // actors + (j < num_envs % actors) for j in range(actors)]  # as even as can be
        self.offsets = [sum(sizes[:j]) for j in range(actors)]
        self.sizes = sizes
        cpus = min(1.0, math.floor(free / actors * 1e4) / 1e4)  # rounded down: all of them fit
        remote = ray.remote(EnvWorker).options(num_cpus=cpus, scheduling_strategy="SPREAD")
        self.actors = [remote.remote(family, n) for n in sizes]
        try:  # started and placed, or one clear error instead of waiting for ever
            ray.get([a.node.remote() for a in self.actors], timeout=START_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise RLError(
                f"{actors} Ray actors of {cpus:g} CPU each were not running after {START_TIMEOUT} s "
                f"(the cluster had {free:g} CPUs free)"
            ) from None

    def nodes(self) -> list[str]:
        """The Ray node of each actor."""
        return self.ray.get([a.node.remote() for a in self.actors])

    def set_attr(self, name: str, values: Any) -> None:
        if name != "task":
            raise AttributeError(f"RayVectorEnv has no settable attribute {name!r}")
        values = list(values) if isinstance(values, (list, tuple)) else [values] * self.num_envs
        if len(values) != self.num_envs:
            raise RLError(f"{len(values)} tasks for {self.num_envs} environments")
        self.ray.get([a.set_tasks.remote(values[o : o + n]) for a, o, n in zip(self.actors, self.offsets, self.sizes)])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        seeds = [None if seed is None else seed + o for o in self.offsets]
        return np.concatenate(self.ray.get([a.reset.remote(s) for a, s in zip(self.actors, seeds)])), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)
        parts = self.ray.get(
            [a.step.remote(actions[o : o + n]) for a, o, n in zip(self.actors, self.offsets, self.sizes)]
        )
        obs, reward, terminated, truncated = (np.concatenate(x) for x in zip(*parts))
        return obs, reward, terminated, truncated, {}

    def close(self) -> None:
        if self.actors:
            for actor in self.actors:
                self.ray.kill(actor)
            self.actors = []


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
