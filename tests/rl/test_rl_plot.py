"""``fewshot rl plot RUN``: learning curves of a tiny run as PNG, and one-line errors for what is not a run."""

import json

import pytest
from PIL import Image

from fewshot.rl.cli import main

pytest.importorskip("gymnasium", reason="fewshot.rl needs gymnasium: pip install 'fewshot[rl]'")

SMALL = ["--set", "iterations=3", "--set", "meta_batch=2", "--set", "episodes=2", "--set", "hidden=[8]"]
SMALL += ["--set", "family_options.horizon=10", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("plot") / "run"
    assert main(["train", "--config", "pointnav-maml", *SMALL, "--out", str(run)]) == 0
    return run


def test_plot_writes_the_curves_of_a_run(run, tmp_path, capsys):
    (run / "curves.png").unlink()
    capsys.readouterr()
    assert main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "curves.png")
    out = tmp_path / "figures" / "curves.png"  # a folder that does not exist yet
    assert main(["plot", str(run), "--out", str(out)]) == 0
    for path in (run / "curves.png", out):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 600 and image.height > 400


def test_the_trainer_writes_the_same_figure(run, tmp_path):
    out = tmp_path / "again.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert (run / "curves.png").exists()
    with Image.open(out) as a, Image.open(run / "curves.png") as b:
        assert a.size == b.size


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "no such run folder"),
        ("empty-folder", "not an rl run folder"),
        ("supervised-run", "not an rl run folder"),
        ("no-iterations", "no iterations logged yet"),
    ],
)
def test_what_is_not_a_run_with_iterations_is_one_line_and_status_2(setup, message, run, tmp_path, capsys):
    folder = tmp_path / "run"
    if setup != "missing":
        folder.mkdir()
    if setup == "supervised-run":
        (folder / "config.json").write_text(json.dumps({"algorithm": "maml", "backbone": "conv4"}))
        (folder / "metrics.jsonl").write_text(json.dumps({"split": "train", "step": 1, "loss": 1.0}) + "\n")
    if setup == "no-iterations":
        (folder / "config.json").write_text((run / "config.json").read_text())
        (folder / "metrics.jsonl").write_text("")
    assert main(["plot", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fewshot rl: error: ") and err.count("\n") == 1 and message in err, err
    assert not (folder / "curves.png").exists()
