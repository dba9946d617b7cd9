"""Run folders through the CLI as users run it: resume restores the run, nothing is overwritten by accident."""

import hashlib
import json
import os
import signal

import cli_args
import pytest
import torch
from images import make_tree
from safetensors.torch import load_file

from fewshot.cli import main
from fewshot.engine.train import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("runs") / "shapes")


def train_argv(data, *extra, steps=8):
    return cli_args.train_argv(data, None, *extra, steps=steps, test_episodes=6, val_every=3, val_episodes=6)


def fingerprint(folder):
    """SHA-256 and size of every file under ``folder``: any change shows."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(train_argv(data, "--out", str(out))) == 0
    return out


def weights(run):
    return load_file(run / "checkpoint" / "model.safetensors")


def test_bare_resume_after_ctrl_c_ends_bit_identical_to_an_uninterrupted_run(data, finished, tmp_path, monkeypatch):
    out = tmp_path / "run"
    step = Trainer.train_step

    def ctrl_c_at_step_4(self, batch):
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: finish the step, save, exit
        return step(self, batch)

    monkeypatch.setattr(Trainer, "train_step", ctrl_c_at_step_4)
    assert main(train_argv(data, "--out", str(out))) == 130
    monkeypatch.undo()
    assert json.loads((out / "last" / "training_state.json").read_text())  # resumable state saved
    assert main(["train", "--resume", "--out", str(out)]) == 0  # the README's bare line
    a, b = weights(finished), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((out / "result.json").read_text())["step"] == 8
    drop_time = lambda path: [{**json.loads(x), "time": 0} for x in path.read_text().splitlines()]  # noqa: E731
    assert drop_time(out / "metrics.jsonl") == drop_time(finished / "metrics.jsonl")


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--algorithm", "maml"], "algorithm: 'protonet' -> 'maml'"),
        (["--dataset", "glyphs"], "dataset: 'image-folder' -> 'glyphs'"),
        (["--ways", "5"], "ways: 3 -> 5"),
        (["--backbone", "resnet12"], "backbone"),
        (["--set", "algorithm_options.distance=cosine"], "algorithm_options.distance: None -> 'cosine'"),
        (["--lr", "0.01"], "lr"),
    ],
)
def test_resume_with_other_settings_is_one_line_and_changes_nothing(finished, flags, named, capsys):
    before = fingerprint(finished)
    assert main(["train", "--resume", "--out", str(finished), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fewshot train: error:") and named in err, err
    assert fingerprint(finished) == before


def test_resume_of_a_finished_run_says_so_and_changes_nothing(finished, capsys):
    before = fingerprint(finished)
    for extra in ([], ["--steps", "5"], ["--set", "time_limit=100"]):  # no more steps to run
        assert main(["train", "--resume", "--out", str(finished), *extra]) == 0
        assert "finished at step 8 of" in capsys.readouterr().out
    assert fingerprint(finished) == before


def test_resume_with_more_steps_extends_the_run(data, tmp_path):
    out = tmp_path / "run"
    assert main(train_argv(data, "--out", str(out), steps=4)) == 0
    assert main(["train", "--resume", "--out", str(out), "--steps", "7"]) == 0
    assert json.loads((out / "result.json").read_text())["step"] == 7
    assert json.loads((out / "config.json").read_text())["steps"] == 7


def test_a_run_folder_is_never_overwritten_without_overwrite(data, finished, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(data, "--out", str(out), steps=3)) == 0
    before = fingerprint(out)
    assert main(train_argv(data, "--out", str(out), steps=2)) == 2
    assert "holds a run" in capsys.readouterr().err and fingerprint(out) == before
    (out / "notes.txt").write_text("mine")
    assert main(train_argv(data, "--out", str(out), "--overwrite", steps=2)) == 0
    assert json.loads((out / "result.json").read_text())["step"] == 2 and (out / "notes.txt").exists()
    assert main(["train", "--resume", "--overwrite", "--out", str(out)]) == 2


def test_runs_without_out_get_their_own_folders_and_latest_follows(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(train_argv(data, steps=3)) == 0
    assert main(train_argv(data, steps=2)) == 0
    folders = sorted(p for p in (tmp_path / "runs").iterdir() if not p.is_symlink())
    assert len(folders) == 2 and all((p / "result.json").exists() for p in folders)
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink() and json.loads((latest / "result.json").read_text())["step"] == 2
    assert json.loads((latest / "config.json").read_text())["out"] == str(latest.resolve().relative_to(tmp_path))
    capsys.readouterr()
    assert main(["train", "--resume"]) == 0  # the latest run, finished
    assert "finished at step 2" in capsys.readouterr().out


def test_zero_steps_saves_and_tests_the_initial_learner_and_says_so(data, tmp_path, capsys):
    assert main(train_argv(data, "--out", str(tmp_path / "run"), steps=0)) == 0
    assert "steps=0: nothing was trained" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "result.json").read_text())["step"] == 0


def test_resume_where_nothing_was_saved_is_one_line(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "no run to resume here" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--set", "steps=abc"], "steps='abc': expected an integer"),
        (["--steps", "-5"], "steps=-5: must not be negative"),
        (["--ways", "1"], "ways must be at least 2"),
        (["--set", "algorithm_options.nonsense=1"], "unknown algorithm 'protonet' option(s) nonsense; valid:"),
        (["--set", "dataset_options.nonsense=1"], "unknown dataset 'image-folder' option(s) nonsense; valid:"),
        (["--set", "backbone_options.nonsense=1"], "unknown backbone 'conv4' option(s) nonsense; valid:"),
        (["--device", "tpu"], "device 'tpu': valid devices are"),
        (["--set", "schedule=wiggly"], "unknown schedule 'wiggly'"),
    ],
)
def test_bad_settings_are_one_line_and_write_nothing(data, tmp_path, flags, named, capsys):
    out = tmp_path / "run"
    assert main([*train_argv(data, "--out", str(out)), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fewshot train: error:") and named in err, err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_evaluate_on_a_missing_device_is_one_line(finished, capsys):
    for device, named in [("cuda", "CUDA is not available"), ("tpu", "valid devices")]:
        assert main(["evaluate", str(finished), "--device", device]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err


def test_download_from_a_source_without_the_zips_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    target = tmp_path / "omniglot"
    assert main(["download", "omniglot", str(target), "--source", str(tmp_path / "empty")]) == 2
    assert "not found in the source folder" in capsys.readouterr().err and not target.exists()


def test_a_kill_between_the_two_renames_of_a_save_loses_nothing(data, tmp_path):
    out = tmp_path / "run"
    assert main(train_argv(data, "--out", str(out), steps=4)) == 0
    before = fingerprint(out / "last")
    (out / "last").rename(out / ".last.old")  # what a kill right after the first rename leaves
    assert main(["train", "--resume", "--out", str(out), "--steps", "5"]) == 0
    assert json.loads((out / "result.json").read_text())["step"] == 5 and not (out / ".last.old").exists()
    assert before != fingerprint(out / "last")
