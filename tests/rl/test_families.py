"""Task families: sampling and checks, the vector environments, and the HalfCheetah families on MuJoCo."""

import sys

import numpy as np
import pytest
import torch

from fewshot.rl.errors import RLError
from fewshot.rl.tasks import FAMILIES, get_family

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(RLError, match="unknown RL task family 'walker'; valid names: cheetah-dir, .*pointnav"):
        get_family("walker")


def test_parameters_are_sampled_in_range_recorded_and_checked():
    family = get_family("pointnav")
    tasks = family.sample_tasks(50, torch.Generator().manual_seed(0))
    assert tasks == family.sample_tasks(50, torch.Generator().manual_seed(0))  # reproducible
    xs = np.array([[t.params["goal_x"], t.params["goal_y"]] for t in tasks])
    assert (np.abs(xs) <= 0.5).all() and xs.std() > 0.2
    assert tasks[0].to_dict() == {"family": "pointnav", "params": dict(tasks[0].params)}
    with pytest.raises(RLError, match=r"goal_x=0.7 is outside \[-0.5, 0.5\]"):
        family.task(goal_x=0.7, goal_y=0.0)
    with pytest.raises(RLError, match="missing: goal_y"):
        family.task(goal_x=0.1)
    physics = FAMILIES.get("cheetah-physics")()
    with pytest.raises(RLError, match="disabled_joint=1.5 must be an integer"):
        physics.task(mass_scale=1, damping_scale=1, friction_scale=1, disabled_joint=1.5)
    with pytest.raises(RLError, match="direction=0 is not one of"):
        FAMILIES.get("cheetah-dir")().task(direction=0)


def test_pointnav_vector_env_matches_the_single_env_and_pays_minus_the_distance():
    family = get_family("pointnav", horizon=3)
    tasks = [family.task(goal_x=0.5, goal_y=0.0), family.task(goal_x=0.0, goal_y=-0.5)]
    venv = family.make_vector_env(2)
    venv.set_attr("task", tasks)
    venv.reset(seed=0)
    envs = [family.make_env(task) for task in tasks]
    for env in envs:
        env.reset(seed=0)
    actions = np.array([[0.3, 0.0], [0.05, -0.05]], np.float32)  # the first is clipped to 0.1
    for _ in range(3):
        obs, reward, terminated, truncated, _ = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, _, tr, _ = env.step(actions[i])
            np.testing.assert_allclose(obs[i], o)
            assert reward[i] == pytest.approx(r) and truncated[i] == tr
    np.testing.assert_allclose(obs[0], [0.3, 0.0], atol=1e-6)
    assert reward[0] == pytest.approx(-0.2) and truncated.all() and not terminated.any()


@pytest.fixture(scope="module")
def mujoco_ok():
    pytest.importorskip("mujoco", reason="MuJoCo families need the mujoco wheel: pip install 'fewshot[rl]'")
    try:
        get_family("cheetah-vel", horizon=5).make_env().close()
    except RLError as e:  # the wheel is there but the engine cannot load
        pytest.skip(f"MuJoCo cannot load here: {e}")


def run(env, actions):
    env.reset(seed=0)
    return [env.step(a)[1:] for a in actions]


def test_cheetah_families_build_step_and_pay_the_task_reward(mujoco_ok):
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 6)).astype(np.float32)
    direction = get_family("cheetah-dir", horizon=5)
    fwd = run(direction.make_env(direction.task(direction=1)), actions)
    back = run(direction.make_env(direction.task(direction=-1)), actions)
    for (r_f, _, _, info_f), (r_b, _, _, info_b) in zip(fwd, back):
        ctrl = -info_f["reward_ctrl"]
        assert info_f["x_velocity"] == pytest.approx(info_b["x_velocity"])  # same physics, same seed
        assert r_f == pytest.approx(info_f["x_velocity"] - ctrl) and r_b == pytest.approx(-info_b["x_velocity"] - ctrl)
    assert fwd[-1][2] is True  # truncated at the horizon

    velocity = get_family("cheetah-vel", horizon=5)
    (r, _, _, info), *_ = run(velocity.make_env(velocity.task(velocity=1.5)), actions)
    assert r == pytest.approx(-abs(info["x_velocity"] - 1.5) + info["reward_ctrl"])

    venv = velocity.make_vector_env(2)
    venv.set_attr("task", velocity.sample_tasks(2))
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (2, 17) and obs.dtype == np.float32
    venv.close()


def test_cheetah_physics_changes_the_model_and_disables_a_joint(mujoco_ok):
    family = get_family("cheetah-physics", horizon=5)
    env = family.make_env().unwrapped
    mass, gear = env.model.body_mass.copy(), env.model.actuator_gear[:, 0].copy()
    env.task = family.task(mass_scale=1.5, damping_scale=0.5, friction_scale=1.2, disabled_joint=3)
    np.testing.assert_allclose(env.model.body_mass, 1.5 * mass)
    assert env.model.actuator_gear[3, 0] == 0 and env.model.actuator_gear[2, 0] == gear[2]
    env.task = family.default_task()  # back to the stock physics, mid-episode if need be
    np.testing.assert_allclose(env.model.body_mass, mass)
    assert env.model.actuator_gear[3, 0] == gear[3]


def test_mujoco_missing_is_one_error_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco now fails as if it were not installed
    family = get_family("cheetah-vel")  # listing and describing need no MuJoCo
    assert family.describe()["params"] == {"velocity": [0.0, 2.0]}
    with pytest.raises(RLError, match=r"needs the 'mujoco' package.*pip install 'fewshot\[rl\]'"):
        family.make_env()
