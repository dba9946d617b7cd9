"""Meta-reinforcement learning (the ``rl`` extra: gymnasium, mujoco): task families of skills, batched
rollouts, MAML-RL with TRPO or PPO outer steps, its baselines, GrBAL-style dynamics adaptation with MPC,
and ``fewshot rl ...``.

The core never imports this package. Modules: ``tasks`` (families, ``FAMILIES``), ``envs`` (point
navigation, HalfCheetah), ``rollouts``, ``policy``, ``returns``, ``objectives``, ``maml``, ``config``,
``train``, ``evaluate``, ``dynamics``, ``render``, ``cli``; zero-shot skills from text: ``language``
(task descriptions and held-out splits), ``interpret`` (text -> task parameters), ``zeroshot``
(``Learner.load(RUN).zero_shot(text)``), ``service`` (``fewshot rl serve``). See docs/rl.md and docs/text.md.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``fewshot.rl.Learner`` without importing the package's modules before they are asked for."""
    if name == "Learner":
        from fewshot.rl.zeroshot import Learner

        return Learner
    raise AttributeError(f"module 'fewshot.rl' has no attribute {name!r}")
