"""Meta-reinforcement learning (the ``rl`` extra: gymnasium, mujoco): task families of skills, batched
rollouts, MAML-RL with TRPO or PPO outer steps, its baselines, GrBAL-style dynamics adaptation with MPC,
and ``fewshot rl ...``.

The core never imports this package. Modules: ``tasks`` (families, ``FAMILIES``), ``envs`` (point
navigation, HalfCheetah), ``rollouts``, ``policy``, ``returns``, ``objectives``, ``maml``, ``config``,
``train``, ``evaluate``, ``dynamics``, ``render``, ``cli``. See docs/rl.md.
"""
