"""HalfCheetah task families on gymnasium's MuJoCo HalfCheetah (v5 model, 17-d obs, 6 actuators, dt 0.05 s).

- ``cheetah-dir``: run forward (+1) or backward (-1); reward ``direction * v_x - 0.05 |a|^2`` (MAML, ProMP).
- ``cheetah-vel``: run at a target velocity in [0, 2]; reward ``-|v_x - velocity| - 0.05 |a|^2`` (MAML, PEARL).
- ``cheetah-physics``: run forward (``v_x - 0.05 |a|^2``) with scaled body masses, joint damping and ground
  friction, and optionally one disabled actuator (the crippled leg of Nagabandi et al. 2019); the task can be
  changed mid-episode (``env.task = ...``), which the dynamics-adaptation experiments use.

MuJoCo is imported when an environment is made, so listing and describing the families needs only numpy.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from fewshot.rl.errors import RLError, require
from fewshot.rl.tasks import ParamSpec, Task, TaskFamily

_log = logging.getLogger(__name__)
CTRL_COST = 0.05
ACTUATORS = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
X_VELOCITY = 8  # obs index of the root's x velocity (obs = qpos[1:] [8], qvel [9])


class _Cheetah(TaskFamily):
    """Shared: horizon and environment construction (sync or process-parallel vector environments)."""

    def __init__(self, horizon: int = 200) -> None:
        if horizon < 1:
            raise RLError(f"{self.name} needs horizon >= 1, got {horizon}")
        self.horizon = int(horizon)

    def default_task(self) -> Task:
        return self.task(**{k: (s.choices[0] if s.choices else s.low) for k, s in self.params.items()})

    def make_env(self, task: Task | None = None, render_mode: str | None = None) -> Any:
        gym = require("gymnasium", f"the {self.name} family")
        require("mujoco", f"the {self.name} family")
        env = _env_class()(self.name, render_mode=render_mode, width=240, height=240)
        env.task = task or self.default_task()
        return gym.wrappers.TimeLimit(env, self.horizon)

    def make_vector_env(self, num_envs: int, mode: str = "sync") -> Any:
        """``mode="sync"``: the environments stepped in this process; ``"async"``: one process each."""
        gym = require("gymnasium", f"the {self.name} family")
        self.make_env()  # one clear error now if MuJoCo cannot load, not one per worker process
        fns = [_EnvFactory(self) for _ in range(num_envs)]
        if mode == "async":
            return gym.vector.AsyncVectorEnv(fns, context="spawn")
        if mode == "sync":
            return gym.vector.SyncVectorEnv(fns)
        raise RLError(f"vector mode must be 'sync' or 'async', got {mode!r}")


class _EnvFactory:
    """A picklable ``make_env`` (for worker processes)."""

    def __init__(self, family: _Cheetah) -> None:
        self.family = family

    def __call__(self) -> Any:
        return self.family.make_env()


class CheetahDirection(_Cheetah):
    """HalfCheetah running forward or backward (direction +1 / -1)."""

    name = "cheetah-dir"
    params = {"direction": ParamSpec(-1.0, 1.0, choices=(-1.0, 1.0))}


class CheetahVelocity(_Cheetah):
    """HalfCheetah running at a target forward velocity in [0, 2]."""

    name = "cheetah-vel"
    params = {"velocity": ParamSpec(0.0, 2.0)}


class CheetahPhysics(_Cheetah):
    """HalfCheetah running forward with varied physics: mass, damping, friction scales and a disabled joint."""

    name = "cheetah-physics"
    params = {
        "mass_scale": ParamSpec(0.5, 1.5),
        "damping_scale": ParamSpec(0.5, 1.5),
        "friction_scale": ParamSpec(0.5, 1.5),
        "disabled_joint": ParamSpec(-1, len(ACTUATORS) - 1, integer=True),  # -1: none; else an ACTUATORS index
    }

    def default_task(self) -> Task:
        return self.task(mass_scale=1.0, damping_scale=1.0, friction_scale=1.0, disabled_joint=-1)


def task_reward(task: Task, x_velocity: float, action: np.ndarray) -> tuple[float, float]:
    """(reward, control cost) of one step of ``task``."""
    ctrl = CTRL_COST * float(np.square(action).sum())
    if task.family == CheetahDirection.name:
        return task.params["direction"] * x_velocity - ctrl, ctrl
    if task.family == CheetahVelocity.name:
        return -abs(x_velocity - task.params["velocity"]) - ctrl, ctrl
    return x_velocity - ctrl, ctrl


_CLASSES: dict[str, type] = {}


def _env_class() -> type:
    """``HalfCheetahTaskEnv``, defined on first use: its base class imports MuJoCo."""
    if "env" in _CLASSES:
        return _CLASSES["env"]
    import mujoco
    from gymnasium import spaces
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    class HalfCheetahTaskEnv(HalfCheetahEnv):
        """HalfCheetah whose reward and physics follow its ``task`` (settable at any time)."""

        def __init__(self, family: str, **kwargs: Any) -> None:
            previous = mujoco.get_mju_user_warning()
            # the stock model's deprecated compiler attribute: a log line, not a print on every environment
            mujoco.set_mju_user_warning(lambda text: _log.debug("MuJoCo: %s", text))
            try:
                super().__init__(**kwargs)
            finally:
                mujoco.set_mju_user_warning(previous)
            self.observation_space = spaces.Box(-np.inf, np.inf, self.observation_space.shape, np.float32)
            self.family = family
            self._task: Task | None = None
            m = self.model
            self._base = {  # the model's own values, which the physics tasks scale
                "body_mass": m.body_mass.copy(),
                "body_inertia": m.body_inertia.copy(),
                "dof_damping": m.dof_damping.copy(),
                "geom_friction": m.geom_friction.copy(),
                "actuator_gear": m.actuator_gear.copy(),
            }

        @property
        def task(self) -> Task | None:
            return self._task

        @task.setter
        def task(self, task: Task) -> None:
            if task.family != self.family:
                raise RLError(f"a {self.family} environment cannot take a {task.family} task")
            self._task = task
            p, m, base = task.params, self.model, self._base
            if task.family == CheetahPhysics.name:
                m.body_mass[:] = base["body_mass"] * p["mass_scale"]
                m.body_inertia[:] = base["body_inertia"] * p["mass_scale"]
                m.dof_damping[:] = base["dof_damping"] * p["damping_scale"]
                m.geom_friction[:] = base["geom_friction"] * p["friction_scale"]
                m.actuator_gear[:] = base["actuator_gear"]
                if p["disabled_joint"] >= 0:
                    m.actuator_gear[int(p["disabled_joint"])] = 0.0

        def step(self, action):
            x_before = float(self.data.qpos[0])
            self.do_simulation(action, self.frame_skip)
            x_velocity = (float(self.data.qpos[0]) - x_before) / self.dt
            assert self._task is not None
            reward, ctrl = task_reward(self._task, x_velocity, np.asarray(action))
            info = {"x_velocity": x_velocity, "reward_ctrl": -ctrl}
            return self._get_obs().astype(np.float32), reward, False, False, info

        def reset_model(self):
            return super().reset_model().astype(np.float32)

    _CLASSES["env"] = HalfCheetahTaskEnv
    return HalfCheetahTaskEnv
