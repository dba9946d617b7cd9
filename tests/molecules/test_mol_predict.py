import pytest
import torch

from fewshot.algorithms.metric import ProtoNet
from fewshot.molecules.assays import load_assays
from fewshot.molecules.baselines import RandomForest
from fewshot.molecules.methods import build_learner, load_learner, save_learner
from fewshot.molecules.predict import predict_smiles, read_smiles_csv
from fewshot.molecules.smiles import InvalidSmilesError
from fewshot.molecules.train import meta_train

SUPPORT = ["CCO", "CCCO", "CC", "CCC"]
LABELS = [1, 1, 0, 0]


def test_tiny_table_flows_through_train_save_load_predict(tiny_csv, tmp_path):
    family = load_assays(tiny_csv, "train", train_tasks=["A"], test_tasks=["B"], cache=False)
    spec = {
        "algorithm": "protonet",
        "encoder": {"kind": "mlp", "in_features": 2048, "hidden": [32]},
        "featurizer": "ecfp",
    }
    torch.manual_seed(0)
    learner = build_learner(spec)
    meta_train(learner, family, steps=5, shots=2, queries=2, batch_size=2, log_every=5)
    save_learner(learner, spec, tmp_path / "run", {"note": "tiny"})
    loaded, loaded_spec = load_learner(tmp_path / "run")
    assert isinstance(loaded, ProtoNet) and loaded_spec == spec
    p = predict_smiles(loaded, loaded_spec["featurizer"], SUPPORT, LABELS, ["CCCCO", "CCCC"])
    q = predict_smiles(learner.eval(), "ecfp", SUPPORT, LABELS, ["CCCCO", "CCCC"])
    assert p.shape == (2,) and torch.allclose(p, q) and ((p > 0) & (p < 1)).all()
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_bad_requests_give_one_clear_error():
    learner = ProtoNet(torch.nn.Flatten())
    with pytest.raises(InvalidSmilesError, match="query index 1"):
        predict_smiles(learner, "ecfp", SUPPORT, LABELS, ["CCO", "C1CC"])
    with pytest.raises(InvalidSmilesError, match="support index 2"):
        predict_smiles(learner, "ecfp", ["CCO", "CC", "nope", "CCC"], LABELS, ["CCO"])
    with pytest.raises(ValueError, match="both actives"):
        predict_smiles(learner, "ecfp", SUPPORT, [1, 1, 1, 1], ["CCO"])
    with pytest.raises(ValueError, match="empty support"):
        predict_smiles(learner, "ecfp", [], [], ["CCO"])
    with pytest.raises(ValueError, match="index 3 is 2"):
        predict_smiles(learner, "ecfp", SUPPORT, [1, 1, 0, 2], ["CCO"])
    with pytest.raises(ValueError, match="at most 3 support"):
        predict_smiles(learner, "ecfp", SUPPORT, LABELS, ["CCO"], max_support=3)
    with pytest.raises(ValueError, match="between 1 and"):
        predict_smiles(learner, "ecfp", SUPPORT, LABELS, [])


def test_random_forest_probabilities():
    p = predict_smiles(RandomForest(n_estimators=10), "ecfp", SUPPORT, LABELS, ["CCCCO"])
    assert 0 <= float(p[0]) <= 1


def test_csv_readers(tmp_path):
    (tmp_path / "s.csv").write_text("SMILES,label\nCCO,1\nCC,0\n")
    (tmp_path / "q.csv").write_text("smiles\nCCO\nC1CC\n")
    assert read_smiles_csv(tmp_path / "s.csv", labelled=True) == (["CCO", "CC"], [1, 0])
    assert read_smiles_csv(tmp_path / "q.csv", labelled=False) == (["CCO", "C1CC"], None)
    (tmp_path / "bad.csv").write_text("smiles,label\nCCO,yes\n")
    with pytest.raises(ValueError, match="row 0 label 'yes'"):
        read_smiles_csv(tmp_path / "bad.csv", labelled=True)
    with pytest.raises(ValueError, match="needs a 'label' column"):
        read_smiles_csv(tmp_path / "q.csv", labelled=True)
    (tmp_path / "nosmiles.csv").write_text("mol,label\nCCO,1\n")
    with pytest.raises(ValueError, match="no 'smiles' column"):
        read_smiles_csv(tmp_path / "nosmiles.csv", labelled=True)


def test_corrupt_saved_learner_is_a_clear_error(tmp_path):
    (tmp_path / "learner.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a saved molecule learner"):
        load_learner(tmp_path)
