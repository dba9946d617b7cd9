"""``fewshot molecules`` end to end: a tiny CSV through train, evaluate --json, predict and the HTTP service."""

import inspect
import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from fewshot.molecules import assays, fsmol
from fewshot.molecules.cli import main
from fewshot.molecules.config import list_presets, load_config, presets_dir
from fewshot.molecules.service import Limits, create_app

ACTIVES = ["CCO", "CCCO", "CCCCO", "OCC(O)CO", "CC(=O)O", "CCC(=O)O", "OC1CCCCC1", "Oc1ccccc1", "CC(C)O", "OCCO"]
INACTIVES = ["CC", "CCC", "CCCC", "CCCCC", "C1CCCCC1", "c1ccccc1", "CC(C)C", "C=CC", "CCCCCC", "Cc1ccccc1"]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def table(tmp_path, fresh_cache) -> Path:
    """Three assays (A, B train; C test): alcohols and acids active, hydrocarbons inactive; one invalid SMILES."""
    rows = [f"{s},1,1,1" for s in ACTIVES] + [f"{s},0,0,0" for s in INACTIVES] + ["C1CC,1,0,1"]
    return write_csv(tmp_path / "tiny.csv", "smiles,A,B,C", rows)


def config_file(tmp_path: Path, table: Path, **changes) -> Path:
    settings = {
        "domain": "molecules",
        "data": "assays",
        "data_root": str(table),
        "data_options": {"train_tasks": ["A", "B"], "test_tasks": ["C"]},
        "encoder": {"kind": "mlp", "hidden": [16]},
        "steps": 6,
        "shots": 2,
        "queries": 2,
        "batch_size": 2,
        "lr": 1e-3,
        "validate_every": 3,
        "valid_draws": 1,
        "save_every": 3,
        "eval_sizes": [2],
        "eval_draws": 2,
        **changes,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_tiny_csv_through_train_evaluate_predict_and_serve(tmp_path, table, capsys, caplog):
    config, run = config_file(tmp_path, table), tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli(capsys, "train", "--config", config, "--out", run, "--json")
    assert code == 0, err
    assert "skipped 1 of 21 invalid SMILES" in caplog.text  # the training CSV's bad row: a reported skip
    result = json.loads(out)
    assert result["completed"] and result["step"] == 6 and result["run"] == str(run)
    saved = json.loads((run / "config.json").read_text())
    assert saved["domain"] == "molecules" and saved["settings"]["steps"] == 6
    meta = json.loads((run / "checkpoint" / "checkpoint.json").read_text())
    assert meta["domain"] == "molecules" and meta["spec"]["encoder"]["in_features"] == 2048
    assert (run / "checkpoint" / "model.safetensors").is_file() and (run / "last" / "training_state.json").is_file()

    code, out, err = run_cli(capsys, "evaluate", run, "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["support_size"] == 2 and row["tasks"] == 1
    for metric in ("roc_auc", "delta_auprc"):
        assert set(row[metric]) >= {"mean", "ci95"} and -1 <= row[metric]["mean"] <= 1
    code, out, _ = run_cli(capsys, "evaluate", run, "--json", "--support-sizes", "1,2", "--draws", "3")
    assert code == 0 and [r["support_size"] for r in json.loads(out)] == [1, 2]
    code, out, _ = run_cli(capsys, "evaluate", run / "checkpoint")
    assert code == 0 and "K    2" in out

    support = write_csv(tmp_path / "support.csv", "smiles,label", ["CCO,1", "CCCO,1", "CC,0", "CCC,0"])
    query = write_csv(tmp_path / "query.csv", "smiles", ["CCCCCO", "CCCCCCC"])
    code, out, err = run_cli(capsys, "predict", run, "--support", support, "--query", query, "--json")
    assert code == 0, err
    cli_p = [r["probability"] for r in json.loads(out)["predictions"]]
    assert len(cli_p) == 2 and all(0 < p < 1 for p in cli_p)
    code, out, _ = run_cli(capsys, "predict", run, "--support", support, "--query", query)
    assert code == 0 and out.splitlines()[0] == "smiles,probability" and out.splitlines()[1].startswith("CCCCCO,")

    client = TestClient(create_app(run))
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/model").json()["spec"]["algorithm"] == "protonet"
    body = {"support": [{"smiles": s, "label": y} for s, y in [("CCO", 1), ("CCCO", 1), ("CC", 0), ("CCC", 0)]]}
    response = client.post("/predict", json={**body, "query": ["CCCCCO", "CCCCCCC"]})
    assert response.status_code == 200, response.text
    http_p = [r["probability"] for r in response.json()["predictions"]]
    assert http_p == pytest.approx(cli_p, abs=1e-6)


def test_http_refusals_name_the_problem(tmp_path, table, capsys):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--config", config_file(tmp_path, table, steps=2), "--out", run)[0] == 0
    client = TestClient(create_app(run, limits=Limits(max_request_bytes=4000, max_query=5, max_smiles_chars=40)))
    support = [{"smiles": "CCO", "label": 1}, {"smiles": "CC", "label": 0}]

    def post(payload, status: int, *phrases: str) -> dict:
        r = (
            client.post("/predict", json=payload)
            if not isinstance(payload, bytes)
            else client.post("/predict", content=payload, headers={"content-type": "application/json"})
        )
        assert r.status_code == status, r.text
        for phrase in phrases:
            assert phrase in r.json()["detail"]
        return r.json()

    bad = post({"support": [*support, {"smiles": "C1CC", "label": 1}], "query": ["CCO"]}, 422, "support index 2")
    assert bad["where"] == "support" and bad["index"] == 2
    bad = post({"support": support, "query": ["CCO", "nope"]}, 422, "query index 1")
    assert bad["where"] == "query" and bad["index"] == 1
    post({"support": [], "query": ["CCO"]}, 422, "empty support")
    post({"support": [support[0], {"smiles": "CCCO", "label": 1}], "query": ["CCO"]}, 422, "both actives")
    post({"support": support, "query": []}, 422, "no query")
    post({"support": [*support, {"smiles": "CCN", "label": 2}], "query": ["CCO"]}, 422, "support[2]: label")
    post({"support": support, "query": ["CCO", 5]}, 422, "query[1]")
    post({"query": ["CCO"]}, 422, "expected")
    post(b"{not json", 400, "not JSON")
    post({"support": support, "query": ["C" * 41]}, 413, "query[0]", "41 characters")
    post({"support": support, "query": ["CCO"] * 6}, 413, "6 query molecules")
    post({"support": support, "query": ["CCCCCCCCCC"] * 400}, 413, "request body over the limit")

    keyed = TestClient(create_app(run, api_key="s3cret"))
    payload = {"support": support, "query": ["CCO"]}
    assert keyed.post("/predict", json=payload).status_code == 401
    assert keyed.post("/predict", json=payload, headers={"x-api-key": "s3cret"}).status_code == 200
    assert keyed.get("/health").status_code == 200


def test_resume_continues_exactly_where_the_run_stopped(tmp_path, table, capsys):
    config = config_file(tmp_path, table)
    assert run_cli(capsys, "train", "--config", config, "--out", tmp_path / "whole")[0] == 0
    assert run_cli(capsys, "train", "--config", config, "--out", tmp_path / "split", "--steps", "3")[0] == 0
    code, out, err = run_cli(capsys, "train", "--resume", "--out", tmp_path / "split", "--steps", "6", "--json")
    assert code == 0, err
    assert json.loads(out)["step"] == 6
    whole = load_file(tmp_path / "whole" / "last" / "model.safetensors")
    split = load_file(tmp_path / "split" / "last" / "model.safetensors")
    assert whole.keys() == split.keys() and all(torch.equal(whole[k], split[k]) for k in whole)
    history = json.loads((tmp_path / "split" / "history.json").read_text())
    assert [h["step"] for h in history if "valid" in h] == [0, 3, 6]


def test_existing_runs_are_not_overwritten_by_accident(tmp_path, table, capsys):
    config, run = config_file(tmp_path, table, steps=1), tmp_path / "run"
    assert run_cli(capsys, "train", "--config", config, "--out", run)[0] == 0
    before = (run / "checkpoint" / "checkpoint.json").read_text()
    code, _, err = run_cli(capsys, "train", "--config", config, "--out", run)
    assert code == 2 and "already holds a run" in err and (run / "checkpoint" / "checkpoint.json").read_text() == before
    assert run_cli(capsys, "train", "--config", config, "--out", run, "--overwrite", "--seed", "1")[0] == 0
    assert json.loads((run / "config.json").read_text())["settings"]["seed"] == 1
    code, _, err = run_cli(capsys, "train", "--resume", "--out", tmp_path / "nothing")
    assert code == 2 and "not a molecules run folder" in err


def one_line_error(capsys, *argv) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("fewshot molecules: error: ")
    return err


def test_bad_training_data_is_one_error_and_writes_nothing(tmp_path, fresh_cache, capsys):
    cases = {
        "no SMILES column": ("name,A,B", ["CCO,1,0"]),
        "no assay columns": ("smiles", ["CCO", "CC"]),
        "no training assay has 4 actives": ("smiles,A,B,C", [f"{s},0,0,1" for s in ACTIVES + INACTIVES]),
    }
    for phrase, (header, rows) in cases.items():
        table = write_csv(tmp_path / "bad.csv", header, rows)
        run = tmp_path / "run"
        err = one_line_error(capsys, "train", "--config", config_file(tmp_path, table), "--out", run)
        assert phrase in err
        assert not run.exists()
        assert not list(fresh_cache.rglob("*.tmp")) and not list(fresh_cache.rglob("*.part"))


def test_a_test_assay_without_actives_is_a_reported_skip(tmp_path, fresh_cache, capsys, caplog):
    rows = [f"{s},1,1,0" for s in ACTIVES] + [f"{s},0,0,0" for s in INACTIVES]
    table = write_csv(tmp_path / "t.csv", "smiles,A,B,C", rows)
    run = tmp_path / "run"
    config = config_file(tmp_path, table, data_options={"train_tasks": ["A"], "test_tasks": ["B", "C"]})
    assert run_cli(capsys, "train", "--config", config, "--out", run)[0] == 0
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli(capsys, "evaluate", run, "--json")
    assert code == 0, err
    assert json.loads(out)["tasks"] == 1
    assert "skipped 1 of 2 tasks too small for shots 2" in caplog.text
    only_c = config_file(tmp_path, table, data_options={"train_tasks": ["A"], "test_tasks": ["C"]})
    assert run_cli(capsys, "train", "--config", only_c, "--out", tmp_path / "c")[0] == 0
    assert "no test assay is large enough" in one_line_error(capsys, "evaluate", tmp_path / "c")


def test_bad_cli_input_is_one_line(tmp_path, table, capsys):
    config = config_file(tmp_path, table, steps=1)
    assert "neither a YAML file nor a preset" in one_line_error(capsys, "train", "--config", "no-such-preset")
    assert "unknown setting 'stepz'" in one_line_error(capsys, "train", "--config", config, "--set", "stepz=3")
    assert "lr" in one_line_error(capsys, "train", "--config", config, "--set", "lr=fast")
    assert "required" in one_line_error(capsys, "evaluate")
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--config", config, "--out", run)[0] == 0
    support = write_csv(tmp_path / "s.csv", "smiles,label", ["CCO,1", "CC,0"])
    one_class = write_csv(tmp_path / "one.csv", "smiles,label", ["CCO,1", "CCCO,1"])
    query = write_csv(tmp_path / "q.csv", "smiles", ["CCO", "C1CC"])
    nosmiles = write_csv(tmp_path / "n.csv", "mol", ["CCO"])
    assert "query index 1" in one_line_error(capsys, "predict", run, "--support", support, "--query", query)
    assert "no 'smiles' column" in one_line_error(capsys, "predict", run, "--support", support, "--query", nosmiles)
    assert "both actives" in one_line_error(capsys, "predict", run, "--support", one_class, "--query", support)
    assert "--draws must be >= 1" in one_line_error(capsys, "evaluate", run, "--draws", "0")
    assert "--support-sizes" in one_line_error(capsys, "evaluate", run, "--support-sizes", "a,b")
    (tmp_path / "config.json").write_text('{"domain": "images"}')
    assert "not a molecules run" in one_line_error(capsys, "evaluate", tmp_path)


def test_presets_are_molecule_configs():
    names = list_presets()
    assert {"fsmol-protonet", "tox21-protonet-10shot", "sider-protonet-10shot"} <= set(names)
    for name in names:
        assert yaml.safe_load((presets_dir() / f"{name}.yaml").read_text())["domain"] == "molecules"
        config = load_config(name)
        assert config.protocol == ("fs-mol" if config.data == "fs-mol" else "moleculenet")


def test_dataset_functions_take_root_and_split(table):
    for fn in (fsmol.load_fs_mol, assays.load_assays, assays.load_tox21, assays.load_sider, assays.load_muv):
        params = list(inspect.signature(fn).parameters)
        assert params[:2] == ["root", "split"], fn.__name__
    family = assays.load_assays(root=table, split="test", train_tasks=["A", "B"], test_tasks=["C"])
    assert family.num_tasks == 1 and family.assay_names == family.task_names == ["C"]


def test_a_missing_extra_is_one_clear_error(tmp_path):
    import subprocess
    import sys

    code = "import sys; sys.modules['rdkit'] = None; from fewshot.molecules.cli import main; "
    code += f"sys.exit(main(['train', '--config', 'fsmol-protonet', '--out', {str(tmp_path / 'run')!r}]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "pip install 'fewshot[molecules" in done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "run").exists()


def test_ctrl_c_saves_the_run_and_resume_finishes_it(tmp_path, table, capsys, monkeypatch):
    from fewshot.molecules.tasks import AssayTasks

    original, calls = AssayTasks.sample_tasks, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AssayTasks, "sample_tasks", interrupted)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--config", config_file(tmp_path, table), "--out", run)
    assert code == 130 and "--resume --out" in err
    assert json.loads((run / "last" / "checkpoint.json").read_text())["metrics"]["step"] == 4
    code, out, err = run_cli(capsys, "train", "--resume", "--out", run, "--json")
    assert code == 0, err
    assert json.loads(out)["step"] == 6


def test_the_core_commands_hand_molecule_presets_and_runs_over(tmp_path, table, capsys):
    from fewshot.cli import main as fewshot

    config, run = config_file(tmp_path, table), tmp_path / "run"
    assert fewshot(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert fewshot(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["support_size"] == 2
    assert fewshot(["train", "--config", "fsmol-protonet", "--data-root", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("fewshot molecules: error:")
