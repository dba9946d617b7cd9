"""Zero-shot from text on a tiny task-conditioned point-navigation run: the Python API, text then adapt,
``fewshot rl zero-shot`` and the HTTP service (``POST /act``), with bad input."""

import json

import numpy as np
import pytest
import torch

from fewshot.rl.cli import main
from fewshot.rl.errors import RLError

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")
pytest.importorskip("sklearn", reason="the hashing text encoder needs scikit-learn")

SMALL = ["--set", "iterations=2", "--set", "meta_batch=4", "--set", "episodes=5", "--set", "hidden=[16]"]
SMALL += ["--set", "family_options.horizon=20", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("zs") / "oracle"
    assert main(["train", "--config", "pointnav-oracle", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def learner(run):
    from fewshot.rl.zeroshot import Learner

    return Learner.load(run)


def test_python_api_returns_a_policy_for_the_described_task(learner, run):
    policy = learner.zero_shot("go to the top-left corner")
    assert policy.interpretation.params == pytest.approx({"goal_x": -0.5, "goal_y": 0.5}, abs=1e-3)
    action = policy.act([0.0, 0.0])
    assert action.shape == (2,) and np.all(np.abs(action) <= 0.1 + 1e-6)
    # the context is what the oracle policy would see for that goal: the same action as the oracle's
    from fewshot.rl.policy import distribution
    from fewshot.rl.train import load_policy

    _, _, base = load_policy(run)
    with torch.no_grad():
        mean, _ = distribution(base, dict(base.named_parameters()), torch.tensor([0.0, 0.0, -1.0, 1.0]))
    assert np.allclose(action, np.clip(mean.numpy(), -0.1, 0.1), atol=1e-6)
    with pytest.raises(RLError, match="an observation has 2 numbers here, got 3"):
        policy.act([0.0, 0.0, 0.0])
    assert (run / "text-adapter" / "hashing-512" / "adapter.safetensors").is_file()  # kept for the next load


def test_text_then_adapt_recovers_the_true_goal_from_transitions(learner):
    from fewshot.rl.rollouts import Sampler
    from fewshot.rl.zeroshot import collect, infer_context

    family = learner.family
    tasks = [family.task(goal_x=0.35, goal_y=-0.15), family.task(goal_x=-0.45, goal_y=0.05)]
    text = learner.adapter.predict(["go to (0.3, -0.1)", "go 0.4 m left"])  # roughly right
    policy = learner.conditioned([0.0, 0.0])
    sampler = Sampler(family, 2 * 4)
    batch = collect(policy, sampler, tasks, text, 4, torch.Generator().manual_seed(0))
    z = infer_context(family, batch, text)
    truth = torch.tensor([family.features(t) for t in tasks])
    assert (z - truth).abs().max() < 0.02 < (text - truth).abs().max()


def test_cli_zero_shot_prints_the_task_and_the_return(run, capsys, tmp_path):
    capsys.readouterr()
    assert main(["zero-shot", str(run), "--describe", "walk 0.3 m to the right and 0.2 m down", "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "read as: pointnav task with goal_x = 0.300, goal_y = -0.200" in out and "return over 3 episodes" in out
    clip = tmp_path / "clip.gif"
    argv = ["zero-shot", str(run), "--describe", "Gehe 20 cm left ✓", "--json", "--task", "goal_x=-0.2"]
    argv += ["--task", "goal_y=0", "--out", str(clip)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"]["goal_x"] == pytest.approx(-0.2, abs=1e-3) and result["return"] < 0
    assert result["assumed"] == ["goal_y not stated; taken as 0.00"] and clip.is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--describe", ""], "the description is empty"),
        (["--describe", "run at 1.5 m/s"], "reads as a cheetah-vel task"),
        (["--describe", "sing a song"], "no pointnav instruction recognised .* nothing was understood"),
        (["--describe", "go left", "--encoder", "bert"], "unknown text encoder 'bert'"),
    ],
)
def test_cli_bad_input_is_one_line(run, capsys, argv, message):
    capsys.readouterr()
    assert main(["zero-shot", str(run), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fewshot rl: error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err


def test_cli_refuses_an_unconditioned_run(tmp_path, capsys):
    maml = tmp_path / "maml"
    assert main(["train", "--config", "pointnav-maml", *SMALL, "--set", "iterations=1", "--out", str(maml)]) == 0
    capsys.readouterr()
    assert main(["zero-shot", str(maml), "--describe", "go left"]) == 2
    assert "needs a task-conditioned policy" in capsys.readouterr().err


def test_service_acts_and_refuses_clearly(learner):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from fewshot.rl.service import Limits, create_app

    client = TestClient(create_app(learner, Limits(max_request_bytes=4096)))
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/model").json()["observation_size"] == 2
    r = client.post("/act", json={"description": "aller en haut à droite: the top-right corner", "observation": [0, 0]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["action"]) == 2 and body["task"]["params"] == pytest.approx({"goal_x": 0.5, "goal_y": 0.5})
    assert client.post("/interpret", json={"description": "move to (0.1, 0.4)"}).json()["params"] == pytest.approx(
        {"goal_x": 0.1, "goal_y": 0.4}
    )
    bad = [
        ({"description": "", "observation": [0, 0]}, 422, "the description is empty"),
        ({"description": "x" * 501, "observation": [0, 0]}, 422, "the limit is 500"),
        ({"description": "run forward", "observation": [0, 0]}, 422, "reads as a cheetah-dir task"),
        ({"description": "hello", "observation": [0, 0]}, 422, "nothing was understood"),
        ({"description": "go left", "observation": [0, 0, 0]}, 422, "must hold 2 numbers, got 3"),
        ({"description": "go left", "observation": [0, "a"]}, 422, "finite numbers only"),
        ({"description": "go left", "observation": [0] * 1500}, 413, "has 1500 numbers; the limit is 1024"),
        ({"description": "go left", "observation": [0] * 3000}, 413, "over the limit of 4096 bytes"),
        ({"description": "go left"}, 422, "'observation' must be a list of 2 numbers"),
        ({"description": 3, "observation": [0, 0]}, 422, "'description' must be a string"),
        ({"description": "go left", "observation": [0, 0], "speed": 1}, 422, "unknown field"),
    ]
    for payload, status, message in bad:
        r = client.post("/act", json=payload)
        assert r.status_code == status and message in r.json()["detail"], (payload, r.text)
    r = client.post("/act", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]
