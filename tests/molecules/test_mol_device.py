"""``--device`` of ``fewshot molecules train`` and ``evaluate``: cpu, cuda, cuda:N, auto; one error without CUDA."""

import json

import pytest
import test_mol_cli
import torch
from safetensors.torch import load_file
from test_mol_cli import config_file, run_cli

from fewshot.molecules.config import ConfigError, load_config, resolve_device
from fewshot.molecules.methods import load_learner_full

table = test_mol_cli.table  # the fixture: a tiny assay CSV (A, B train; C test)


def test_device_cpu_trains_and_evaluates_a_tiny_run(tmp_path, table, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--config", config_file(tmp_path, table), "--out", run,
                             "--device", "cpu", "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["completed"] and result["step"] == 6 and result["device"] == "cpu"
    assert json.loads((run / "config.json").read_text())["settings"]["device"] == "cpu"
    code, out, err = run_cli(capsys, "evaluate", run, "--json", "--device", "cpu")
    assert code == 0, err
    assert json.loads(out)["support_size"] == 2
    learner, _, _ = load_learner_full(run / "checkpoint")
    assert {p.device.type for p in learner.parameters()} == {"cpu"}
    # the resumable state continues on any device; --device may change on resume
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", "8", "--device", "auto", "--json")
    assert code == 0, err
    assert json.loads(out)["step"] == 8


def test_device_cuda_without_cuda_is_one_error_and_writes_nothing(tmp_path, table, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    code, out, err = run_cli(
        capsys, "train", "--config", config_file(tmp_path, table), "--out", run, "--device", "cuda"
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "CUDA is not available" in err and "'cuda'" in err
    assert not run.exists()
    assert resolve_device("auto") == torch.device("cpu")


def test_device_names_are_checked(tmp_path, table, capsys, monkeypatch):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--config", config_file(tmp_path, table), "--out", run, "--device", "tpu")
    assert code == 2 and err.count("\n") == 1 and "device must be cpu, cuda, cuda:N or auto, got 'tpu'" in err
    assert not run.exists()
    with pytest.raises(ConfigError, match="device must be"):
        load_config(str(config_file(tmp_path, table)), {"device": "gpu"})
    assert load_config(str(config_file(tmp_path, table)), {"device": "cuda:1"}).device == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="has 1 CUDA device"):
        resolve_device("cuda:3")
    code, _, err = run_cli(capsys, "evaluate", run, "--device", "tpu")
    assert code == 2 and "got 'tpu'" in err


def test_core_train_hands_device_to_the_molecules_command(tmp_path, table, capsys):
    from fewshot.cli.main import main as core_main

    run = tmp_path / "run"
    code = core_main(["train", "--config", str(config_file(tmp_path, table, steps=2)), "--device", "cpu",
                      "--out", str(run)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["settings"]["device"] == "cpu"
    code = core_main(["evaluate", str(run), "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["support_size"] == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trained_run_loads_and_evaluates_on_cpu(tmp_path, table, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--config", config_file(tmp_path, table), "--out", run,
                             "--device", "cuda", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["device"].startswith("cuda")
    assert all(t.device.type == "cpu" for t in load_file(run / "checkpoint" / "model.safetensors").values())
    code, out, err = run_cli(capsys, "evaluate", run, "--json")  # default: cpu
    assert code == 0, err
    code, out, err = run_cli(capsys, "evaluate", run, "--json", "--device", "cuda")
    assert code == 0, err
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--steps", "8", "--device", "cuda")
    assert code == 0, err
