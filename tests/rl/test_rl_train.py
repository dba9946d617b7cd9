"""A run stopped as by Ctrl-C resumes exactly; a non-finite rollout is one clear error."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fewshot.rl.config import preset
from fewshot.rl.errors import RLError
from fewshot.rl.policy import GaussianMLPPolicy
from fewshot.rl.rollouts import Sampler
from fewshot.rl.tasks import get_family
from fewshot.rl.train import RLTrainer

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")

SMALL = {"meta_batch": 3, "episodes": 4, "hidden": [8], "family_options": {"horizon": 15}, "iterations": 3}


def test_a_run_stopped_like_ctrl_c_resumes_exactly(tmp_path):
    for outer in ("trpo", "ppo"):
        config = preset("pointnav-maml", {**SMALL, "outer": outer})
        trainer = RLTrainer.create(config, tmp_path / f"stopped-{outer}", quiet=True)
        step = trainer.learner.train_step

        def stop_after_one(*args, step=step, trainer=trainer):
            trainer.stop_requested = True  # what the first Ctrl-C or SIGTERM does
            return step(*args)

        trainer.learner.train_step = stop_after_one
        assert trainer.run()["iteration"] == 1  # stopped, last/ saved
        assert RLTrainer.resume(tmp_path / f"stopped-{outer}", quiet=True).run()["completed"]
        RLTrainer.create(config, tmp_path / f"straight-{outer}", quiet=True).run()
        a = load_file(tmp_path / f"stopped-{outer}" / "checkpoint" / "model.safetensors")
        b = load_file(tmp_path / f"straight-{outer}" / "checkpoint" / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), outer


def test_a_non_finite_rollout_names_the_task(monkeypatch):
    family = get_family("pointnav", horizon=5)
    sampler = Sampler(family, 4)
    step = sampler.env.step

    def nan_step(actions):
        obs, *rest = step(actions)
        obs[2, 0] = np.nan
        return (obs, *rest)

    monkeypatch.setattr(sampler.env, "step", nan_step)
    policy = GaussianMLPPolicy(2, 2, (4,))
    tasks = [family.task(goal_x=0.1, goal_y=0.1), family.task(goal_x=-0.2, goal_y=0.3)]
    with pytest.raises(RLError, match=r"non-finite obs in a rollout of task .*'goal_x': -0.2"):
        sampler.collect(policy, dict(policy.named_parameters()), tasks, 2, torch.Generator().manual_seed(0))
