"""Ensembles of molecule learners: the mean of the members' probabilities, by hand; the same scores
through precomputed embeddings; saved and loaded like a learner; ``fewshot molecules ensemble``."""

import json

import pytest
import torch
from test_mol_cli import config_file, one_line_error, run_cli, table, write_csv  # noqa: F401 (a fixture)

from fewshot.molecules.ensemble import Ensemble
from fewshot.molecules.evaluate import as_scorer
from fewshot.molecules.features import DenseFeatures
from fewshot.molecules.methods import build_learner, load_learner, on_embeddings, save_learner
from fewshot.molecules.tasks import AssayTask, AssayTasks

SPECS = [
    {"algorithm": "protonet", "encoder": {"kind": "mlp", "in_features": 12, "hidden": [8]}, "featurizer": "ecfp"},
    {"algorithm": "mahalanobis", "encoder": {"kind": "mlp", "in_features": 12, "hidden": [6]}, "featurizer": "ecfp"},
]


def members(seed: int = 0) -> list:
    torch.manual_seed(seed)
    return [build_learner(spec).eval() for spec in SPECS]


def test_probabilities_are_the_members_mean():
    x = torch.randn(20, 12)
    support_y = torch.tensor([1, 1, 1, 0, 0, 0])
    parts = members()
    logits = Ensemble(parts).adapt(x[:6], support_y)(x[6:])  # [14, 2]
    expected = torch.stack([m.adapt(x[:6], support_y)(x[6:]).softmax(-1) for m in parts]).mean(0)
    torch.testing.assert_close(logits.exp(), expected)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(14))
    with pytest.raises(ValueError, match="at least two members"):
        Ensemble(parts[:1])


def test_embeddings_path_scores_as_the_raw_path():
    torch.manual_seed(1)
    tasks = [AssayTask(f"t{i}", DenseFeatures(values=torch.randn(16, 12)), torch.arange(16) % 2) for i in range(3)]
    family = AssayTasks(tasks, name="toy")
    ensemble = Ensemble(members())
    twin, embedded = on_embeddings(ensemble, family)
    assert embedded.tasks[0].gather(torch.arange(2)).shape == (2, 8 + 6)  # the members' embeddings side by side
    index = torch.arange(16)
    support, query = index[:6], index[6:]
    for task, flat in zip(family.tasks, embedded.tasks):
        raw = as_scorer(ensemble)(task.gather(support), task.labels[support], task.gather(query))
        fast = as_scorer(twin)(flat.gather(support), flat.labels[support], flat.gather(query))
        torch.testing.assert_close(fast, raw)


def test_saved_and_loaded_like_a_learner(tmp_path):
    ensemble = Ensemble(members())
    spec = {"algorithm": "ensemble", "featurizer": "ecfp", "members": SPECS}
    save_learner(ensemble, spec, tmp_path / "ens")
    loaded, loaded_spec = load_learner(tmp_path / "ens")
    assert isinstance(loaded, Ensemble) and loaded_spec == spec
    x, y = torch.randn(10, 12), torch.tensor([1, 0, 1, 0])
    torch.testing.assert_close(loaded.adapt(x[:4], y)(x[4:]), ensemble.eval().adapt(x[:4], y)(x[4:]))
    with pytest.raises(ValueError, match="share its featurizer"):
        build_learner({**spec, "members": [SPECS[0], {**SPECS[1], "featurizer": "ecfp+graph"}]})


def test_the_ensemble_command_joins_runs_that_evaluate_predict_and_serve(tmp_path, table, capsys):  # noqa: F811
    from fastapi.testclient import TestClient

    from fewshot.molecules.service import create_app

    config = config_file(tmp_path, table, steps=2, validate_every=0)
    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, run in enumerate(runs):
        assert run_cli(capsys, "train", "--config", config, "--out", run, "--seed", seed, "--quiet")[0] == 0
    ens = tmp_path / "ens"
    code, out, err = run_cli(capsys, "ensemble", *runs, "--out", ens)
    assert code == 0 and "ensemble of 2 runs" in out, err
    assert json.loads((ens / "config.json").read_text())["members"] == [str(r.resolve()) for r in runs]

    code, out, err = run_cli(capsys, "evaluate", ens, "--json")
    assert code == 0 and json.loads(out)["tasks"] == 1, err
    support = write_csv(tmp_path / "support.csv", "smiles,label", ["CCO,1", "CCCO,1", "CC,0", "CCC,0"])
    query = write_csv(tmp_path / "query.csv", "smiles", ["CCCCCO", "CCCCCCC"])

    def probabilities(run) -> list[float]:
        code, out, err = run_cli(capsys, "predict", run, "--support", support, "--query", query, "--json")
        assert code == 0, err
        return [r["probability"] for r in json.loads(out)["predictions"]]

    each = [probabilities(r) for r in runs]
    joined = probabilities(ens)
    assert joined == pytest.approx([(a + b) / 2 for a, b in zip(*each)], abs=1e-6)
    client = TestClient(create_app(ens))
    assert client.get("/model").json()["spec"]["algorithm"] == "ensemble"

    err = one_line_error(capsys, "train", "--resume", "--out", ens)
    assert "is an ensemble" in err and str(runs[0].resolve()) in err
    err = one_line_error(capsys, "ensemble", runs[0], "--out", tmp_path / "one")
    assert "at least two runs" in err and not (tmp_path / "one").exists()
    err = one_line_error(capsys, "ensemble", *runs, "--out", ens)
    assert "already holds a run" in err
    other = config_file(tmp_path, table, steps=1, validate_every=0, featurizer={"ecfp": {"radius": 1}})
    assert run_cli(capsys, "train", "--config", other, "--out", tmp_path / "c", "--quiet")[0] == 0
    err = one_line_error(capsys, "ensemble", runs[0], tmp_path / "c", "--out", tmp_path / "mixed")
    assert "differ in featurizer" in err and not (tmp_path / "mixed").exists()
