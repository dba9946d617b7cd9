"""2D point navigation to a goal (Finn et al. 2017, section 5.3): the fast test bed of meta-RL.

The agent starts at the origin, moves by its action clipped to [-0.1, 0.1] per axis, and is paid minus its
distance to the goal each step; goals are uniform in [-0.5, 0.5]^2, episodes last ``horizon`` steps.
``PointNavEnv`` is one gymnasium environment; ``PointNavVectorEnv`` steps ``num_envs`` of them as numpy
arrays (a gymnasium ``VectorEnv``), each with its own task.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from fewshot.rl.errors import RLError
from fewshot.rl.tasks import ParamSpec, Task, TaskFamily

MAX_STEP = 0.1


class PointNav(TaskFamily):
    """2D point navigation to a goal in [-goal_range, goal_range]^2 (MAML's first RL family)."""

    name = "pointnav"
    batched_natively = True

    def __init__(self, horizon: int = 100, goal_range: float = 0.5) -> None:
        if horizon < 1 or goal_range <= 0:
            raise RLError(f"pointnav needs horizon >= 1 and goal_range > 0, got {horizon}, {goal_range}")
        self.horizon, self.goal_range = int(horizon), float(goal_range)
        self.params = {"goal_x": ParamSpec(-goal_range, goal_range), "goal_y": ParamSpec(-goal_range, goal_range)}

    def make_env(self, task: Task | None = None, render_mode: str | None = None) -> PointNavEnv:
        """``render_mode`` is ignored: ``fewshot rl render`` draws point navigation itself."""
        env = PointNavEnv(self.horizon)
        env.task = task or self.task(goal_x=0.0, goal_y=0.0)
        return env

    def make_vector_env(self, num_envs: int, mode: str = "sync") -> PointNavVectorEnv:
        """``mode`` is accepted for a uniform interface: the numpy batch is always in-process."""
        return PointNavVectorEnv(num_envs, self.horizon, self.task(goal_x=0.0, goal_y=0.0))


def _spaces() -> tuple[spaces.Box, spaces.Box]:
    obs = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    act = spaces.Box(-MAX_STEP, MAX_STEP, (2,), np.float32)
    return obs, act


def _goal(task: Task) -> np.ndarray:
    if task.family != PointNav.name:
        raise RLError(f"a pointnav environment cannot take a {task.family} task")
    return np.array([task.params["goal_x"], task.params["goal_y"]], dtype=np.float64)


class PointNavEnv(gym.Env):
    """One point: obs = position [2], action = step [2] (clipped), reward = -distance to the goal."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, horizon: int) -> None:
        self.observation_space, self.action_space = _spaces()
        self.horizon, self.goal = horizon, np.zeros(2)
        self._task: Task | None = None
        self.pos, self.t = np.zeros(2), 0

    @property
    def task(self) -> Task | None:
        return self._task

    @task.setter
    def task(self, task: Task) -> None:
        self._task, self.goal = task, _goal(task)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos, self.t = np.zeros(2), 0
        return self.pos.astype(np.float32), {}

    def step(self, action):
        self.pos = self.pos + np.clip(np.asarray(action, dtype=np.float64), -MAX_STEP, MAX_STEP)
        self.t += 1
        reward = -float(np.linalg.norm(self.pos - self.goal))
        return self.pos.astype(np.float32), reward, False, self.t >= self.horizon, {}


class PointNavVectorEnv(gym.vector.VectorEnv):
    """Positions [E, 2] and goals [E, 2] as numpy arrays; all episodes start and end together."""

    metadata: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, horizon: int, task: Task) -> None:
        self.num_envs, self.horizon = num_envs, horizon
        self.single_observation_space, self.single_action_space = _spaces()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.pos, self.t = np.zeros((num_envs, 2)), 0  # [E, 2]
        self.goals = np.repeat(_goal(task)[None], num_envs, 0)  # [E, 2]
        self.tasks = [task] * num_envs

    def set_attr(self, name: str, values: Any) -> None:
        """``set_attr("task", tasks)``: one task per environment (or one for all)."""
        if name != "task":
            raise AttributeError(f"PointNavVectorEnv has no settable attribute {name!r}")
        values = list(values) if isinstance(values, (list, tuple)) else [values] * self.num_envs
        if len(values) != self.num_envs:
            raise RLError(f"{len(values)} tasks for {self.num_envs} environments")
        self.tasks, self.goals = values, np.stack([_goal(t) for t in values])

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        self.pos, self.t = np.zeros((self.num_envs, 2)), 0
        return self.pos.astype(np.float32), {}

    def step(self, actions):
        self.pos = self.pos + np.clip(np.asarray(actions, dtype=np.float64), -MAX_STEP, MAX_STEP)  # [E, 2]
        self.t += 1
        reward = -np.linalg.norm(self.pos - self.goals, axis=1)  # [E]
        truncated = np.full(self.num_envs, self.t >= self.horizon)
        return self.pos.astype(np.float32), reward, np.zeros(self.num_envs, bool), truncated, {}
