"""fewshot.reproduce (benchmarks/reproduce.py): the results table and run reuse (no training here)."""

import argparse
import json
import runpy
import sys
from pathlib import Path

import pytest

from fewshot.reproduce import cli, measure, records, rows, table


def record(**changes):
    base = {
        "row": "protonet",
        "cell": "20w1s",
        "title": "ProtoNet",
        "accuracy": 95.5,
        "ci95": 0.2,
        "episodes": 1000,
        "published": 96.0,
        "trained_as": "5w1s",
        "train_wall_s": 600.0,
        "steps": 100,
        "preset_steps": 200,
        "machine": "test machine",
        "command": "python benchmarks/reproduce.py protonet --steps 100",
    }
    return base | changes


def test_table_shows_measured_cells_beside_published_and_the_rest_as_not_run(tmp_path):
    (tmp_path / "protonet-20w1s.json").write_text(json.dumps(record()))
    text = table.table(str(tmp_path))
    line = next(x for x in text.splitlines() if "20w1s (learner of 5w1s)" in x)
    assert "95.50 +- 0.20" in line and "| 96.0 |" in line and "-0.50" in line
    assert "100 / 200 (reduced)" in line and "10 min" in line and "--steps 100" in line
    # every other published cell is listed with its command and why it has no number
    assert text.count("not run yet") == sum(len(r.published) for r in rows.ROWS.values()) - 1
    assert "| MAML | 5w1s | not run yet (second order wants a GPU" in text
    assert "- MatchingNet: no FCE" in text


def test_changed_ignores_where_files_go_and_how_it_is_tested_but_not_the_recipe():
    a = {"steps": 100, "lr": 0.001, "out": "a", "quiet": True, "device": "cpu", "algorithm_options": {"inner_steps": 5}}
    elsewhere = {
        "out": "b",
        "quiet": False,
        "device": "cuda",
        "test_episodes": 0,
        "test_shots": 5,
        "keep_freed_memory": 0,
    }
    assert measure.changed_settings(a, a | elsewhere) == set()
    assert measure.changed_settings(a, a | {"algorithm_options": {"inner_steps": 5, "adapt_batch": 10}}) == set()
    assert measure.changed_settings(a, a | {"steps": 200, "algorithm_options": {"inner_steps": 10}}) == {
        "steps",
        "algorithm_options",
    }


def test_a_run_folder_with_another_recipe_is_refused_not_resumed(tmp_path):
    from fewshot.engine.config import load_config

    out = tmp_path / "reptile-20w1s"
    out.mkdir()
    old = load_config("omniglot-reptile-20w1s").to_dict() | {"steps": 15000}
    (out / "config.json").write_text(json.dumps(old))
    args = argparse.Namespace(data_root="unused", device="cpu", steps=None, set=[])
    with pytest.raises(SystemExit, match="holds a run with other settings \\(steps\\)"):
        measure.train("omniglot-reptile-20w1s", out, args)


def test_own_trains_each_cell_on_its_own_preset_instead_of_the_shared_learner():
    relation = rows.ROWS["relation"]
    assert rows.trained_as(relation, "20w1s", own=False) == "5w1s"
    assert rows.trained_as(relation, "20w1s", own=True) == "20w1s"
    assert rows.trained_as(rows.ROWS["maml"], "20w5s", own=False) == "20w5s"


def test_cell_shape():
    assert rows.cell_shape("20w5s") == (20, 5)


def test_recorded_command_leaves_out_where_files_are(tmp_path):
    argv = ["relation", "--cells", "5w1s", "--runs", "/tmp/x", "--data-root=/d", "--set", "step_size=2000"]
    assert records.command(argv) == "python benchmarks/reproduce.py relation --cells 5w1s --set step_size=2000"
    old = record(command="python benchmarks/reproduce.py protonet --steps 100 --runs /work/runs/reproduce")
    (tmp_path / "protonet-20w1s.json").write_text(json.dumps(old))
    text = table.table(str(tmp_path))
    assert "`python benchmarks/reproduce.py protonet --steps 100` |" in text and "/work/runs" not in text


def test_reptile_shares_a_learner_only_between_presets_that_train_alike():
    from fewshot.engine.config import load_config

    def changed(a, b):  # the settings that shape training and differ: reproduce's own comparison
        return measure.changed_settings(load_config(a).to_dict(), load_config(b).to_dict())

    reptile = rows.ROWS["reptile"]
    assert reptile.shared
    for cell, source in reptile.shared.items():
        assert changed(f"omniglot-reptile-{cell}", f"omniglot-reptile-{source}") == set()
    # MAML trains on the test shots, so its 5-shot presets do not train alike
    assert changed("omniglot-fomaml-5w5s", "omniglot-fomaml-5w1s")


def test_row_notes_read_the_inner_loop_off_the_presets(tmp_path, monkeypatch):
    assert table.recipes("protonet", rows.ROWS["protonet"]) == ""  # metric methods have no inner loop
    assert table.recipes("anil", rows.ROWS["anil"]) == (
        "presets: meta-batch 16, 5 inner steps of lr 0.1, 5 steps at test"
    )
    reptile = table.recipes("reptile", rows.ROWS["reptile"])
    assert reptile.startswith("presets: meta-batch 5, 10-shot training tasks, 50 steps at test")
    assert reptile.endswith(
        "5w1s, 5w5s: 5 inner Adam steps of lr 0.001 on 10 examples; "
        "20w1s, 20w5s: 10 inner Adam steps of lr 0.0005 on 20 examples"
    )
    # a preset's change reaches the note: the note is not a copy of the preset
    preset = tmp_path / "omniglot-anil-20w5s.yaml"
    preset.write_text("base: omniglot-anil-20w5s\nmeta_batch: 8\n")
    real = table.recipe
    monkeypatch.setattr(table, "recipe", lambda p: real(str(preset) if p.endswith("anil-20w5s") else p))
    assert table.recipes("anil", rows.ROWS["anil"]) == (
        "presets: 5 inner steps of lr 0.1, 5 steps at test; 20w1s: meta-batch 16; 20w5s: meta-batch 8"
    )


def test_a_variant_row_trains_another_rows_presets_with_its_settings(tmp_path, monkeypatch):
    from fewshot.engine.config import load_config

    calls, real_train = [], measure.train

    class Learner:
        def evaluate(self, **kwargs):
            return argparse.Namespace(mean=0.97, ci95=0.001, episodes=kwargs["episodes"])

    def train(preset, out, args, overrides=()):
        calls.append((preset, out.name, overrides))
        return Learner(), {"steps": 5, "preset_steps": 60000}, 1.0

    monkeypatch.setattr(measure, "train", train)
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "anil-zero", "--cells", "20w5s"])
    Namespace = argparse.Namespace
    args = Namespace(cells=["20w5s"], own=False, runs=str(tmp_path / "runs"), results=str(tmp_path), episodes=10)
    measure.run_row("anil-zero", args)
    assert calls == [("omniglot-anil-20w5s", "anil-zero-20w5s", ("algorithm_options.zero_head=true",))]
    saved = json.loads((tmp_path / "anil-zero-20w5s.json").read_text())
    assert saved["row"] == "anil-zero" and saved["published"] == 98.0 and saved["accuracy"] == pytest.approx(97.0)
    assert "| ANIL, zero head | 20w5s | 97.00 +- 0.10 | 98.0 |" in table.table(str(tmp_path))
    assert table.recipes("anil-zero", rows.ROWS["anil-zero"]) == table.recipes("anil", rows.ROWS["anil"])
    # the real train applies the overrides: a run folder of the plain preset is refused, not resumed
    out = tmp_path / "anil-zero-20w5s"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(load_config("omniglot-anil-20w5s").to_dict()))
    plain = Namespace(data_root="unused", device="cpu", steps=None, set=[])
    with pytest.raises(SystemExit, match="other settings \\(algorithm_options\\)"):
        real_train("omniglot-anil-20w5s", out, plain, rows.ROWS["anil-zero"].settings)


def test_every_row_cell_names_a_preset_tested_on_that_cell():
    from fewshot.engine.config import load_config

    for name, row in rows.ROWS.items():
        for cell in row.published:
            config = load_config(f"omniglot-{row.presets or name}-{cell}")
            assert (config.test_ways, config.test_shots) == rows.cell_shape(cell), (name, cell)


def test_a_row_with_the_papers_test_options_records_both_tests(tmp_path, monkeypatch):
    import torch

    from fewshot.algorithms.spec import LearnerSpec, build_algorithm
    from fewshot.data import FewShotDataset
    from fewshot.engine.checkpoint import save_checkpoint
    from fewshot.engine.learners import checkpoint_metadata

    # a real (untrained) RelationNet checkpoint: its BatchNorm running statistics differ from any batch's
    spec = LearnerSpec("relation", "conv4", input_shape=(1, 28, 28), ways=5, num_train_classes=10)
    torch.manual_seed(0)
    algorithm = build_algorithm(spec)
    for m in algorithm.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(3.0)
    run = tmp_path / "runs" / "relation-5w1s"
    save_checkpoint(run / "checkpoint", algorithm.state_dict(), checkpoint_metadata(spec, None))
    images = torch.rand(10 * 20, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    data = FewShotDataset(
        images + torch.arange(10).repeat_interleave(20)[:, None, None, None] / 10,
        torch.arange(10).repeat_interleave(20),
    )

    class Learner:
        config = argparse.Namespace(test_split="test")

        def dataset(self, split):
            return data

        def evaluate(self, **kwargs):  # the preset's own test: the running statistics
            return measure.test_with_options(run, {}, self, kwargs["ways"], kwargs["shots"], kwargs["episodes"])

    monkeypatch.setattr(measure, "train", lambda *a: (Learner(), {"steps": 5, "preset_steps": 40000}, 1.0))
    monkeypatch.setattr(sys, "argv", ["reproduce.py", "relation", "--cells", "5w1s"])
    args = argparse.Namespace(
        cells=["5w1s"], own=False, runs=str(tmp_path / "runs"), results=str(tmp_path / "results"), episodes=20
    )
    measure.run_row("relation", args)
    saved = json.loads((tmp_path / "results" / "relation-5w1s.json").read_text())
    batch = measure.test_with_options(run, {"bn": "batch"}, Learner(), 5, 1, 20)
    running = measure.test_with_options(run, {}, Learner(), 5, 1, 20)
    assert batch.mean != running.mean  # the option reaches the test
    assert saved["test_options"] == {"bn": "batch"} and saved["accuracy"] == pytest.approx(100 * batch.mean)
    assert saved["preset_test"]["accuracy"] == pytest.approx(100 * running.mean)
    text = table.table(str(tmp_path / "results"))
    assert f"| RelationNet | 5w1s | {100 * batch.mean:.2f} +- {100 * batch.ci95:.2f} |" in text
    assert f"the presets' own test, without bn=batch: 5w1s {100 * running.mean:.2f}" in text
    # a record measured before the row took the paper's test says so
    old = {k: v for k, v in saved.items() if k not in ("test_options", "preset_test")}
    (tmp_path / "results" / "relation-5w1s.json").write_text(json.dumps(old))
    assert "| RelationNet | 5w1s (tested without bn=batch) |" in table.table(str(tmp_path / "results"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["protonet", "--cells", "3w1s"], "protonet has no cell 3w1s"),
        (["sinusoid", "--cells", "5w1s"], "sinusoid has no cell 5w1s"),
        (["protonet", "--cells", "5w1s", "--data-root", "/nonexistent/omniglot"], "Omniglot folder not found"),
    ],
)
def test_bad_arguments_stop_with_one_usage_error_before_training(tmp_path, monkeypatch, capsys, argv, message):
    runs, results = tmp_path / "runs", tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["reproduce.py", *argv, "--runs", str(runs), "--results", str(results)])
    monkeypatch.setattr(measure, "train", lambda *a, **k: pytest.fail("trained despite bad arguments"))
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not runs.exists() and not results.exists()


def test_the_script_is_the_package_command_line(monkeypatch, capsys):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "reproduce.py"
    monkeypatch.setattr(sys, "argv", [str(script), "protonet", "--cells", "3w1s"])
    monkeypatch.setattr(measure, "train", lambda *a, **k: pytest.fail("trained despite bad arguments"))
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), run_name="__main__")
    assert stop.value.code == 2
    assert "reproduce.py: error: protonet has no cell 3w1s" in capsys.readouterr().err
