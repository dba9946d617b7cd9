"""Meta-learned dynamics for online adaptation (GrBAL, Nagabandi et al. 2019) with model-predictive control.

A model ``s' = s + f(s, a)`` is meta-trained so that one gradient step on the last ``M`` transitions of an
episode fits the next ``K``: the physics of the moment (a heavier body, a disabled joint) is read off the
recent past. Acting, the controller adapts the meta-learned parameters on the last ``M`` transitions at
every step and picks the first action of the best of ``candidates`` random action sequences under the
adapted model (random shooting). ``adapt=False`` is the same model without adaptation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from fewshot.functional import TaskBatcher, call, detach, inner_loop, parameters
from fewshot.functional.params import Params
from fewshot.optim import sgd
from fewshot.rl.tasks import Task, TaskFamily


@dataclass
class Transitions:
    """Episodes of random actions, one group per task: obs [B, E, T + 1, D], actions [B, E, T, A]."""

    obs: Tensor
    actions: Tensor
    tasks: list[Task]


def collect_random(family: TaskFamily, tasks: list[Task], episodes: int, seed: int) -> Transitions:
    """``episodes`` episodes of uniformly random actions in each task (the data the models learn from)."""
    rng = np.random.default_rng(seed)
    obs_all, act_all = [], []
    for i, task in enumerate(tasks):
        env = family.make_env(task)
        obs_t, act_t = [], []
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + 1000 * i + e)
            os_, as_ = [obs], []
            for _ in range(family.horizon):
                a = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
                obs, _, terminated, truncated, _ = env.step(a)
                os_.append(obs)
                as_.append(a)
                if terminated or truncated:
                    break
            obs_t.append(np.stack(os_))
            act_t.append(np.stack(as_))
        env.close()
        obs_all.append(np.stack(obs_t))
        act_all.append(np.stack(act_t))
    return Transitions(torch.as_tensor(np.stack(obs_all)), torch.as_tensor(np.stack(act_all)), list(tasks))


class DynamicsModel(nn.Module):
    """``(s [..., D], a [..., A]) -> s' [..., D]``: an MLP on normalised inputs predicting the normalised change."""

    in_mean: Tensor
    in_std: Tensor
    out_mean: Tensor
    out_std: Tensor

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        dims, layers = [obs_dim + act_dim, *hidden], []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], obs_dim))
        self.obs_dim, self.act_dim = obs_dim, act_dim
        for name, size in (("in_mean", obs_dim + act_dim), ("in_std", obs_dim + act_dim)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))
        self.register_buffer("out_mean", torch.zeros(obs_dim))
        self.register_buffer("out_std", torch.ones(obs_dim))

    def set_normalization(self, data: Transitions) -> None:
        s, a, s1 = data.obs[:, :, :-1], data.actions, data.obs[:, :, 1:]
        x = torch.cat([s, a], -1).reshape(-1, s.shape[-1] + a.shape[-1])  # [N, D + A]
        d = (s1 - s).reshape(-1, s.shape[-1])  # [N, D]
        self.in_mean.copy_(x.mean(0)), self.in_std.copy_(x.std(0) + 1e-6)
        self.out_mean.copy_(d.mean(0)), self.out_std.copy_(d.std(0) + 1e-6)

    def forward(self, s: Tensor, a: Tensor) -> Tensor:
        x = (torch.cat([s, a], -1) - self.in_mean) / self.in_std
        return s + self.net(x) * self.out_std + self.out_mean

    def normalized_error(self, pred: Tensor, s: Tensor, s1: Tensor) -> Tensor:
        """Mean squared error of the predicted change in normalised units (what the models are trained on)."""
        return (((pred - s1) / self.out_std) ** 2).mean()


def segments(data: Transitions, past: int, future: int, generator: torch.Generator) -> tuple[Tensor, ...]:
    """One random window per task: (s, a, s') of ``past`` transitions then of ``future``: [B, M or K, ...]."""
    B, E, T = data.actions.shape[:3]
    e = torch.randint(E, (B,), generator=generator)
    t0 = torch.randint(T - past - future + 1, (B,), generator=generator)
    idx = t0[:, None] + torch.arange(past + future)  # [B, M + K]
    b = torch.arange(B)[:, None]
    s, a, s1 = data.obs[b, e[:, None], idx], data.actions[b, e[:, None], idx], data.obs[b, e[:, None], idx + 1]
    return s[:, :past], a[:, :past], s1[:, :past], s[:, past:], a[:, past:], s1[:, past:]


class GrBAL:
    """A dynamics model meta-trained for one-step online adaptation (``inner_lr``; ``past`` = M transitions)."""

    def __init__(self, model: DynamicsModel, inner_lr: float = 0.01, past: int = 16, future: int = 16) -> None:
        self.model, self.inner_lr, self.past, self.future = model, inner_lr, past, future
        self._task_loss = TaskBatcher(self._window_loss, num_shared=2, mode="loop")

    def loss(self, params: Params, s: Tensor, a: Tensor, s1: Tensor) -> Tensor:
        """Normalised one-step error of the model with ``params`` on transitions [M, ...]."""
        return self.model.normalized_error(call(self.model, params, dict(self.model.named_buffers()), s, a), s, s1)

    def adapt(self, params: Params, s: Tensor, a: Tensor, s1: Tensor, steps: int = 1) -> Params:
        return inner_loop(self.loss, params, s, a, s1, steps=steps, optimizer=sgd(self.inner_lr))[0]

    def _window_loss(self, params: Params, adapt: Tensor, *window: Tensor) -> Tensor:
        s, a, s1, fs, fa, fs1 = window
        adapted = self.adapt(params, s, a, s1) if bool(adapt) else params
        return self.loss(adapted, fs, fa, fs1)

    def meta_train(
        self,
        data: Transitions,
        steps: int,
        adapt: bool = True,
        lr: float = 1e-3,
        seed: int = 0,
        log: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Adam on the post-adaptation error of random windows of every task (``adapt=False``: plain
        multi-task regression on the same windows, the non-adaptive model)."""
        self.model.set_normalization(data)
        opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        g, losses = torch.Generator().manual_seed(seed), []
        flag = torch.tensor(adapt)
        for step in range(steps):
            window = segments(data, self.past, self.future, g)
            loss = self._task_loss(parameters(self.model), flag, *window).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if log is not None:
                log(step, losses[-1])
        return losses

    def prediction_error(self, data: Transitions, adapt: bool, windows: int = 20, seed: int = 1) -> float:
        """Mean normalised one-step error on the ``future`` transitions after each window's ``past``
        (adapted on them or not)."""
        g, total = torch.Generator().manual_seed(seed), 0.0
        theta = detach(parameters(self.model))
        for _ in range(windows):
            window = segments(data, self.past, self.future, g)
            total += float(self._task_loss(theta, torch.tensor(adapt), *window).mean().detach())
        return total / windows


def forward_reward(s1: Tensor, a: Tensor) -> Tensor:
    """HalfCheetah's running reward read off the predicted state: x velocity minus the control cost [...]."""
    from fewshot.rl.envs.cheetah import CTRL_COST, X_VELOCITY

    return s1[..., X_VELOCITY] - CTRL_COST * a.pow(2).sum(-1)


@torch.no_grad()
def plan(
    model: DynamicsModel,
    params: Params,
    s: Tensor,
    horizon: int,
    candidates: int,
    generator: torch.Generator,
    reward: Callable[[Tensor, Tensor], Tensor] = forward_reward,
) -> Tensor:
    """Random shooting: the first action of the best of ``candidates`` uniform action sequences, each
    rolled out ``horizon`` steps through the model from ``s [D]``. Returns [A]."""
    A = model.act_dim
    actions = torch.rand(candidates, horizon, A, generator=generator) * 2 - 1  # [N, H, A]
    state, total = s.expand(candidates, -1), torch.zeros(candidates)
    buffers = dict(model.named_buffers())
    for t in range(horizon):
        state = call(model, params, buffers, state, actions[:, t])  # [N, D]
        total = total + reward(state, actions[:, t])
    return actions[int(total.argmax()), 0]


def mpc_episode(
    grbal: GrBAL,
    family: TaskFamily,
    task: Task,
    adapt: bool,
    steps: int,
    seed: int,
    horizon: int = 10,
    candidates: int = 500,
    switch: tuple[int, Task] | None = None,
) -> dict[str, float]:
    """One episode under MPC with the model adapted online on the last ``grbal.past`` transitions at every
    step (or not). ``switch = (t, task)`` changes the physics at step ``t`` (a joint disabled mid-episode).
    Returns the episode's return and the mean normalised one-step error of the models it planned with."""
    env = family.make_env(task)
    obs, _ = env.reset(seed=seed)
    g = torch.Generator().manual_seed(seed)
    theta = detach(parameters(grbal.model))
    history: list[tuple[Tensor, Tensor, Tensor]] = []
    total, errors = 0.0, []
    for t in range(steps):
        if switch is not None and t == switch[0]:
            env.unwrapped.task = switch[1]
        s = torch.as_tensor(obs)
        params = theta
        if adapt and history:
            past = history[-grbal.past :]
            ps, pa, ps1 = (torch.stack(x) for x in zip(*past))  # [M, ...]
            params = detach(grbal.adapt(theta, ps, pa, ps1))
        a = plan(grbal.model, params, s, horizon, candidates, g)
        obs, r, terminated, truncated, _ = env.step(a.numpy())
        s1 = torch.as_tensor(obs)
        with torch.no_grad():
            errors.append(float(grbal.loss(params, s[None], a[None], s1[None])))
        history.append((s, a, s1))
        total += float(r)
        if terminated or truncated:
            break
    env.close()
    return {"return": total, "model_error": sum(errors) / len(errors)}
