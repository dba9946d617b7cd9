"""Zero-shot skills from a sentence, and "text then adapt".

The task-conditioned policy is an ``oracle`` run's policy (``fewshot rl train --config pointnav-oracle``):
multi-task trained across the family on observations with the task's parameters appended (scaled to
[-1, 1]). ``ConditionedPolicy`` wraps it with a context vector of its own in place of the true parameters,
so it acts on observations alone and its context can be set from text or inferred from transitions.

- zero-shot: the context is the ``TextAdapter``'s reading of the description; no environment interaction.
- text then adapt: episodes with the text-predicted context, then the context re-estimated from their
  transitions (``infer_context``: the parameters under which the family's reward function best explains
  the observed rewards, a MAP estimate with the text prediction as the prior's mean), then act with it.
  Started from the family's centre instead of the text, the same step is latent inference from scratch.

``Learner.load(RUN).zero_shot(text)`` returns a ``TextPolicy`` (``act(observation) -> action``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fewshot.functional import detach, parameters
from fewshot.rl.errors import RLError
from fewshot.rl.interpret import Interpretation, TextAdapter
from fewshot.rl.language import FAMILIES
from fewshot.rl.policy import distribution
from fewshot.rl.rollouts import Rollouts, Sampler
from fewshot.rl.tasks import Task, TaskFamily, get_family

ADAPTER_DIR = "text-adapter"
DEFAULT_ENCODER = "hashing-512"


class ConditionedPolicy(nn.Module):
    """``obs [..., D] -> base(cat(obs, context))``: a conditioned (oracle) policy acting with its own
    ``context [P]`` (per-task contexts ``[B, P]`` go through the sampler's vmap like any parameter)."""

    def __init__(self, base: nn.Module, context_dim: int) -> None:
        super().__init__()
        self.base = base
        self.context = nn.Parameter(torch.zeros(context_dim), requires_grad=False)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        context = self.context.expand(*obs.shape[:-1], self.context.shape[-1])
        return self.base(torch.cat([obs, context], -1))


def context_params(policy: ConditionedPolicy, contexts: Tensor) -> dict[str, Tensor]:
    """Per-task parameters of ``policy`` with ``contexts [B, P]``: a dict of [B, ...] tensors."""
    B = contexts.shape[0]
    params = {k: v.expand(B, *v.shape) for k, v in detach(parameters(policy)).items()}
    params["context"] = contexts.float()
    return params


def collect(
    policy: ConditionedPolicy, sampler: Sampler, tasks: list[Task], contexts: Tensor, episodes: int, generator
) -> Rollouts:
    """``episodes`` episodes of each true task, the policy acting with ``contexts [B, P]``."""
    return sampler.collect(policy, context_params(policy, contexts), tasks, episodes, generator, per_task=True)


# --- latent inference from transitions ----------------------------------------------------------------------
def _predicted_rewards(family: TaskFamily, params: Tensor, obs: Tensor, actions: Tensor) -> Tensor:
    """Rewards [B, T, K] that ``family``'s reward function gives with task parameters ``params [B, P]`` (in
    the family's units) for each task's transitions (obs [B, T, K, D], actions [B, T, K, A] as sampled)."""
    params = params[:, None, None, :]  # [B, 1, 1, P]
    if family.name == "pointnav":
        from fewshot.rl.envs.pointnav import MAX_STEP

        next_pos = obs[..., :2] + actions.clamp(-MAX_STEP, MAX_STEP)  # [B, T, K, 2]
        return -(next_pos - params[..., :2]).norm(dim=-1)
    from fewshot.rl.envs.cheetah import CTRL_COST, X_VELOCITY

    velocity = obs[..., X_VELOCITY]  # [B, T, K]
    velocity = torch.cat([velocity[:, 1:], velocity[:, -1:]], 1)  # the velocity after each step
    ctrl = CTRL_COST * actions.clamp(-1, 1).pow(2).sum(-1)
    if family.name == "cheetah-vel":
        return -(velocity - params[..., 0]).abs() - ctrl
    if family.name == "cheetah-dir":
        return params[..., 0] * velocity - ctrl
    raise RLError(f"no reward model for latent inference in family {family.name!r}")


def infer_context(
    family: TaskFamily,
    rollouts: Rollouts,
    prior: Tensor,
    prior_weight: float = 1e-3,
    steps: int = 30,
) -> Tensor:
    """Contexts [B, P] (scaled to [-1, 1]) under which the family's reward function best explains each task's
    observed rewards: argmin_z mean (r - r_z)^2 + prior_weight |z - prior|^2, from ``prior [B, P]``, by damped
    Gauss-Newton (Levenberg-Marquardt) steps with a central-difference Jacobian [B, M + P, P] (P is one or
    two), every task at once (the tasks are independent)."""
    names = list(family.params)
    lows = torch.tensor([family.params[k].low for k in names], dtype=torch.float64)
    highs = torch.tensor([family.params[k].high for k in names], dtype=torch.float64)
    f = lambda x: rollouts.per_task(x).contiguous().double()  # noqa: E731  [B, T, K, ...]
    obs, actions, rewards, mask = f(rollouts.obs), f(rollouts.actions), f(rollouts.rewards), f(rollouts.mask)
    B, P = prior.shape
    scale = (mask.sum((1, 2)).clamp_min(1.0)).rsqrt()[:, None]  # [B, 1]: residuals as a mean
    prior = prior.double()

    def residuals(z: Tensor) -> Tensor:  # [B, P] -> [B, M + P]
        params = (lows + highs) / 2 + z * (highs - lows) / 2
        fit = ((_predicted_rewards(family, params, obs, actions) - rewards) * mask).reshape(B, -1) * scale
        return torch.cat([fit, prior_weight**0.5 * (z - prior)], 1)

    def cost(z: Tensor) -> Tensor:
        return residuals(z).pow(2).sum(1)  # [B]

    z, damping = prior.clone(), torch.full((B, 1, 1), 1e-3, dtype=torch.float64)  # [B, P], [B, 1, 1]
    eye = torch.eye(P, dtype=torch.float64)
    for _ in range(steps):
        r = residuals(z)  # [B, M + P]
        J = torch.stack([(residuals(z + 1e-6 * e) - residuals(z - 1e-6 * e)) / 2e-6 for e in _basis(B, P)], -1)
        JtJ, Jtr = J.transpose(1, 2) @ J, (J.transpose(1, 2) @ r[..., None])  # [B, P, P], [B, P, 1]
        step = torch.linalg.solve(JtJ + damping * (eye + torch.diag_embed(JtJ.diagonal(0, 1, 2))), -Jtr)[..., 0]
        trial = (z + step).clamp(-1, 1)
        better = cost(trial) < cost(z)  # [B]
        z = torch.where(better[:, None], trial, z)
        damping = torch.where(better[:, None, None], damping / 3, damping * 4)
    z = z.float()
    if family.name == "cheetah-dir":
        z = torch.where(z >= 0, 1.0, -1.0)
    return z


def _basis(B: int, P: int) -> list[Tensor]:
    """Directions e_p for every task at once: [B, P] each."""
    return [torch.zeros(B, P, dtype=torch.float64).index_fill_(1, torch.tensor([p]), 1.0) for p in range(P)]


# --- the facade -----------------------------------------------------------------------------------------------
@dataclass
class TextPolicy:
    """A policy for the task a sentence describes: ``act(observation) -> action`` (the mean action,
    clipped to the action space; ``deterministic=False`` samples)."""

    interpretation: Interpretation
    policy: ConditionedPolicy
    low: np.ndarray
    high: np.ndarray
    obs_dim: int

    def act(self, observation: Any, deterministic: bool = True, generator: torch.Generator | None = None) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)).reshape(-1)
        if obs.shape[0] != self.obs_dim:
            raise RLError(f"an observation has {self.obs_dim} numbers here, got {obs.shape[0]}")
        if not torch.isfinite(obs).all():
            raise RLError("the observation holds a non-finite number")
        with torch.no_grad():
            mean, log_std = distribution(self.policy, detach(parameters(self.policy)), obs)
            action = mean if deterministic else mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
        return np.clip(action.numpy(), self.low, self.high)

    __call__ = act


class Learner:
    """A conditioned (oracle) run with a text adapter: ``interpret``, ``zero_shot``, ``evaluate``."""

    def __init__(self, run: str | Path, config: Any, family: TaskFamily, base: nn.Module, adapter: TextAdapter) -> None:
        self.run, self.config, self.family, self.adapter = Path(run), config, family, adapter
        self.base = base
        self._interpretations: dict[str, Interpretation] = {}
        self._env = family.make_env()
        self.low, self.high = self._env.action_space.low, self._env.action_space.high
        self.obs_dim = int(np.prod(self._env.observation_space.shape))
        self._env.close()

    @classmethod
    def load(cls, run: str | Path, encoder: str = DEFAULT_ENCODER, refit: bool = False) -> Learner:
        """The conditioned policy of an ``oracle`` run, and its text adapter (fitted on the family's training
        descriptions the first time, and kept in ``RUN/text-adapter/`` for the next)."""
        from fewshot.rl.train import load_policy
        from fewshot.text.encoders import TextError, get_encoder

        config, _, base = load_policy(run)
        if config.method != "oracle":
            raise RLError(
                f"{run}: zero-shot from text needs a task-conditioned policy (an oracle run, e.g. "
                f"fewshot rl train --config {config.family}-oracle); this run's method is {config.method!r}"
            )
        if config.family not in FAMILIES:
            raise RLError(f"zero-shot from text covers {', '.join(FAMILIES)}; this run's family is {config.family}")
        family = get_family(config.family, **config.family_options)
        try:
            enc = get_encoder(encoder)
        except TextError as e:
            raise RLError(str(e)) from None
        ranges = {k: (s.low, s.high) for k, s in family.params.items()}
        adapter = TextAdapter(family.name, ranges, enc)
        folder = Path(run) / ADAPTER_DIR / enc.name
        if not refit and _load_adapter(adapter, folder):
            return cls(run, config, family, base, adapter)
        adapter.fit()
        _save_adapter(adapter, folder)
        return cls(run, config, family, base, adapter)

    def interpret(self, text: str) -> Interpretation:
        """The task ``text`` asks for (cached per text), or one ``RLError`` saying what was understood."""
        if text not in self._interpretations:
            if len(self._interpretations) > 1024:
                self._interpretations.clear()
            self._interpretations[text] = self.adapter.interpret(text)
        return self._interpretations[text]

    def conditioned(self, context: list[float] | Tensor) -> ConditionedPolicy:
        policy = ConditionedPolicy(self.base, len(self.family.params))
        with torch.no_grad():
            policy.context.copy_(torch.as_tensor(context, dtype=torch.float32))
        return policy

    def zero_shot(self, text: str) -> TextPolicy:
        """The policy for the task ``text`` describes, acting without any interaction first."""
        reading = self.interpret(text)
        return TextPolicy(reading, self.conditioned(reading.features), self.low, self.high, self.obs_dim)

    def task_of(self, reading: Interpretation) -> Task:
        return self.family.task(**reading.params)

    def evaluate(self, text: str, episodes: int = 10, task: Task | None = None, seed: int = 0) -> dict[str, Any]:
        """Mean return of the zero-shot policy over ``episodes`` episodes of ``task`` (default: the task the
        text was read as), with the interpretation."""
        reading = self.interpret(text)
        task = task or self.task_of(reading)
        sampler = Sampler(self.family, episodes, self.config.vector)
        try:
            policy = self.conditioned(reading.features)
            batch = collect(policy, sampler, [task], torch.tensor([reading.features]), episodes, _gen(seed))
        finally:
            sampler.close()
        returns = batch.returns()
        return {
            **reading.to_dict(),
            "task": task.to_dict()["params"],
            "episodes": episodes,
            "return": float(returns.mean()),
            "return_std": float(returns.std()) if episodes > 1 else 0.0,
        }


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _save_adapter(adapter: TextAdapter, folder: Path) -> None:
    from safetensors.torch import save_file

    tensors, meta = adapter.state()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "adapter.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    (folder / "adapter.json.tmp").write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(folder / "adapter.safetensors")
    (folder / "adapter.json.tmp").replace(folder / "adapter.json")


def _load_adapter(adapter: TextAdapter, folder: Path) -> bool:
    """Fill ``adapter`` from ``folder`` if it holds one fitted for the same family, encoder and slots."""
    from safetensors.torch import load_file

    from fewshot.rl.interpret import SLOTS

    try:
        meta = json.loads((folder / "adapter.json").read_text())
        tensors = load_file(str(folder / "adapter.safetensors"))
    except (OSError, ValueError):
        return False
    same = meta.get("family") == adapter.family and meta.get("encoder") == adapter.encoder.name
    if not same or meta.get("slots") != list(SLOTS):
        return False
    adapter.weights, adapter.classifier = tensors["weights"], tensors["classifier"]
    return True
