"""GrBAL: one gradient step on the recent past lowers the one-step prediction error on held-out physics."""

import pytest
import torch

from fewshot.rl.dynamics import DynamicsModel, GrBAL, collect_random
from fewshot.rl.errors import RLError
from fewshot.rl.tasks import get_family

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")


def test_adaptation_reduces_one_step_error_on_held_out_physics():
    pytest.importorskip("mujoco", reason="the physics family needs the mujoco wheel: pip install 'fewshot[rl]'")
    try:
        family = get_family("cheetah-physics", horizon=60)
        train = collect_random(family, family.sample_tasks(8, torch.Generator().manual_seed(0)), 1, seed=0)
    except RLError as e:
        pytest.skip(f"MuJoCo cannot load here: {e}")
    held_out = [
        family.task(mass_scale=1.4, damping_scale=0.6, friction_scale=1.0, disabled_joint=-1),
        family.task(mass_scale=1.0, damping_scale=1.0, friction_scale=1.0, disabled_joint=3),
    ]
    test = collect_random(family, held_out, 2, seed=7)
    torch.manual_seed(0)
    grbal = GrBAL(DynamicsModel(17, 6, (32, 32)), inner_lr=0.05, past=8, future=8)
    losses = grbal.meta_train(train, 60)
    assert losses[-1] < losses[0]
    adapted, static = grbal.prediction_error(test, adapt=True), grbal.prediction_error(test, adapt=False)
    assert adapted < static
