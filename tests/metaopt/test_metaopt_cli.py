"""``fewshot metaopt`` end to end on tiny budgets, and its bad input."""

import json

import pytest
import torch

from fewshot.engine.checkpoint import save_checkpoint
from fewshot.metaopt.cli import main
from fewshot.metaopt.store import read_rule_metadata

TINY = ["--set", "meta_steps=3", "--set", "horizon=4", "--set", "unroll=2", "--set", "val_every=2"]
TINY += ["--set", "val_problems=1", "--quiet"]


@pytest.mark.parametrize("preset", ["lstm-quadratic", "mlp-digits"])
def test_train_then_evaluate(preset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", preset, "--out", str(run), "--json", *TINY]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3 and summary["out"] == str(run)
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint", "result.json"}
    meta = read_rule_metadata(run)
    assert meta["rule"] == preset.split("-")[0] and meta["training"]["meta_steps"] == 3
    optimizee = json.loads((run / "config.json").read_text())["optimizee"]
    args = ["evaluate", str(run), "--optimizee", optimizee, "--steps", "5", "--problems", "2", "--json"]
    assert main([*args, "--baseline", "adam=0.01"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 5 and len(result["final_losses"]) == 2 and result["nonfinite_updates"] == 0
    assert set(result["baselines"]) == {"adam=0.01"}
    # a second train into the same folder is refused unless --overwrite
    assert main(["train", "--config", preset, "--out", str(run), *TINY]) == 2
    assert "holds a run" in capsys.readouterr().err
    assert main(["train", "--config", preset, "--out", str(run), "--overwrite", *TINY]) == 0


def test_train_from_a_yaml_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("rule: mlp\nrule_options: {lr: 1e-2, hidden: 4}\noptimizee: quadratic\nmeta_lr: 1e-3\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r"), *TINY]) == 0
    assert read_rule_metadata(tmp_path / "r")["settings"]["hidden"] == 4


def one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("fewshot metaopt: error:"), err
    for word in words:
        assert word in err, err


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "never"
    one_line_error(
        capsys,
        ["train", "--config", "lstm-quadratic", "--set", "optimizee=nope", "--out", str(out)],
        "unknown optimizee 'nope'",
        "quadratic",
    )
    one_line_error(
        capsys,
        ["train", "--config", "lstm-quadratic", "--set", "nonsense=1", "--out", str(out)],
        "unknown setting(s) nonsense",
    )
    one_line_error(capsys, ["train", "--config", "lstm-quadratic", "--set", "unroll=0", "--out", str(out)], "unroll")
    one_line_error(capsys, ["train", "--config", "no-such-preset"], "neither a file nor a preset")
    one_line_error(
        capsys, ["train", "--config", "lstm-quadratic", "--set", "rule_options.width=3", "--out", str(out)], "width"
    )
    assert not out.exists()  # nothing half-written

    run = tmp_path / "run"
    assert main(["train", "--config", "lstm-quadratic", "--out", str(run), *TINY]) == 0
    one_line_error(capsys, ["evaluate", str(run), "--optimizee", "nope"], "unknown optimizee 'nope'")
    one_line_error(capsys, ["evaluate", str(run), "--optimizee", "quadratic", "--baseline", "adamw=1"], "adamw")
    learner = tmp_path / "learner"
    save_checkpoint(learner, {"w": torch.zeros(1)}, {"learner": {"algorithm": "protonet"}})
    one_line_error(capsys, ["evaluate", str(learner), "--optimizee", "quadratic"], "not a learned optimizer")
    one_line_error(capsys, ["evaluate", str(tmp_path / "missing"), "--optimizee", "quadratic"], "no checkpoint")
    one_line_error(capsys, ["frobnicate"], "invalid choice")


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lstm-quadratic" in out and "conv-glyphs" in out and "mlp" in out
