"""``fewshot rl`` end to end on point navigation, resume, and bad input (called as ``main(argv)``)."""

import json

import pytest
from PIL import Image
from safetensors.torch import load_file

from fewshot.rl.cli import main

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")

SMALL = ["--set", "iterations=2", "--set", "meta_batch=4", "--set", "episodes=5", "--set", "hidden=[16]"]
SMALL += ["--set", "family_options.horizon=20", "--quiet"]


def test_train_evaluate_and_resume_on_point_navigation(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "pointnav-maml", *SMALL, "--out", str(run)]) == 0
    assert {"config.json", "metrics.jsonl", "checkpoint", "last", "result.json", "curves.png"} <= {
        p.name for p in run.iterdir()
    }
    capsys.readouterr()
    assert main(["evaluate", str(run), "--adapt-steps", "0,1,2,3", "--tasks", "40", "--json", "--random-init"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["family"] == "pointnav" and set(out["methods"]) == {"maml", "random"}
    for row in out["methods"].values():
        assert row["tasks"] == 40 and list(row["steps"]) == ["0", "1", "2", "3"]
        assert all(v["mean"] < 0 and v["ci95"] > 0 for v in row["steps"].values())

    clip = tmp_path / "clip.gif"
    goal = ["--task", "goal_x=0.2", "--task", "goal_y=-0.3"]
    assert main(["render", str(run), *goal, "--adapt-steps", "1", "--out", str(clip)]) == 0
    with Image.open(clip) as image:
        assert image.n_frames > 1

    # two more iterations by resuming equal four in one go
    assert main(["train", "--resume", str(run), "--set", "iterations=4", "--quiet"]) == 0
    straight = tmp_path / "straight"
    assert main(["train", "--config", "pointnav-maml", *SMALL, "--set", "iterations=4", "--out", str(straight)]) == 0
    a, b = load_file(run / "checkpoint" / "model.safetensors"), load_file(straight / "checkpoint" / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--config", "walker-maml"], "unknown preset 'walker-maml'; valid: cheetah-dir-maml"),
        (["train", "--config", "pointnav-maml", "--set", "family=walker"], "unknown RL task family 'walker'; valid"),
        (["train", "--config", "pointnav-maml", "--set", "inner_steps=-1"], "inner_steps must be >= 0"),
        (["train", "--config", "pointnav-maml", "--set", "meta_batch=two"], "meta_batch must be int"),
        (["train", "--config", "pointnav-maml", "--set", "inner_opt=lion"], "unknown inner optimizer 'lion'; valid"),
        (["evaluate", "nowhere"], "nowhere: no checkpoint folder here"),
        (["evaluate", "RUN", "--adapt-steps", "0,x"], "--adapt-steps takes integers"),
        (["evaluate", "RUN", "--task", "goal_x=2", "--task", "goal_y=0"], r"goal_x=2 is outside \[-0.5, 0.5\]"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_status_2(argv, message, tmp_path, capsys):
    run = tmp_path / "run"
    if "RUN" in argv:
        assert main(["train", "--config", "pointnav-maml", *SMALL, "--set", "iterations=1", "--out", str(run)]) == 0
        capsys.readouterr()
    argv = [str(run) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "bad"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("fewshot rl: error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "bad").exists()  # nothing half-written
