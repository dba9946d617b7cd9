import pytest
import torch
from rdkit import Chem

from fewshot.algorithms.metric import ProtoNet
from fewshot.molecules.assays import load_assays
from fewshot.molecules.baselines import KNN, RandomForest
from fewshot.molecules.evaluate import evaluate_protocol
from fewshot.molecules.featurize import featurize
from fewshot.molecules.gnn import GNNEncoder, edge_channels
from fewshot.molecules.graphs import pack_graphs
from fewshot.molecules.protocols import moleculenet_episodes
from fewshot.molecules.train import meta_train
from fewshot.nn import MLP


def test_gnn_is_invariant_to_atom_order_and_padding():
    torch.manual_seed(0)
    smiles = "CC(=O)Oc1ccccc1C(=O)O"
    mol = Chem.MolFromSmiles(smiles)
    shuffled = Chem.MolToSmiles(Chem.RenumberAtoms(mol, list(reversed(range(mol.GetNumAtoms())))), canonical=False)
    assert shuffled != smiles
    table = featurize([smiles, shuffled], "ecfp+graph", cache=False)
    encoder = GNNEncoder(hidden=16, layers=2, out_dim=8, fp_dim=2048).eval()
    x = table.features.take(torch.arange(2))  # [2, L]
    z = encoder(x)
    assert z.shape == (2, 8) and torch.allclose(z[0], z[1], atol=1e-5)
    wide = torch.cat(
        [
            table.features.parts[0].take(torch.arange(2)),
            pack_graphs(table.features.parts[1].arrays, torch.arange(2), atoms=20),
        ],
        dim=1,
    )
    assert torch.allclose(encoder(wide), z, atol=1e-5)
    other = encoder(featurize(["CC(=O)Oc1ccccc1C(=O)N"], "ecfp+graph", cache=False).features.take(torch.arange(1)))
    assert not torch.allclose(other[0], z[0], atol=1e-3)


def test_edge_channels_decode_bond_codes():
    codes = torch.tensor([[[0, 1 + 3 + 4 + 8], [2, 0]]])  # aromatic conjugated ring bond; plain double bond
    adj = edge_channels(codes)  # [1, 6, 2, 2]
    assert adj[0, :, 0, 1].tolist() == [0, 0, 0, 1, 1, 1]
    assert adj[0, :, 1, 0].tolist() == [0, 1, 0, 0, 0, 0]
    assert adj[0, :, 0, 0].sum() == 0


@pytest.fixture
def separable(tmp_path):
    """Two assays where actives are alcohols/acids and inactives are hydrocarbons."""
    actives = ["CCO", "CCCO", "CCCCO", "OCC(O)CO", "CC(=O)O", "CCC(=O)O", "OC1CCCCC1", "Oc1ccccc1"]
    inactives = ["CC", "CCC", "CCCC", "CCCCC", "C1CCCCC1", "c1ccccc1", "CC(C)C", "C=CC"]
    lines = ["smiles,A,B"] + [f"{s},1,1" for s in actives] + [f"{s},0,0" for s in inactives]
    path = tmp_path / "sep.csv"
    path.write_text("\n".join(lines) + "\n")
    return load_assays(path, "train", train_tasks=["A", "B"], test_tasks=[], cache=False)


def test_protonet_on_fingerprints_trains_and_adapts(separable):
    torch.manual_seed(0)
    learner = ProtoNet(MLP(in_features=2048, hidden=(64, 32)))
    history = meta_train(learner, separable, steps=30, shots=2, queries=3, batch_size=2, lr=1e-3, log_every=10)
    assert [h["step"] for h in history] == [10, 20, 30]
    results = evaluate_protocol(learner, moleculenet_episodes(separable, shots=(2,), draws=3))
    assert results[2].to_dict()["roc_auc"]["mean"] > 0.8
    assert results[2].to_dict()["tasks"] == 2


def test_protonet_on_graphs_runs_end_to_end(tmp_path):
    rows = ["smiles,A"] + [f"{'C' * n}O,1" for n in range(1, 6)] + [f"{'C' * n},0" for n in range(1, 6)]
    (tmp_path / "g.csv").write_text("\n".join(rows))
    family = load_assays(tmp_path / "g.csv", "train", train_tasks=1, featurizer="ecfp+graph", cache=False)
    learner = ProtoNet(GNNEncoder(hidden=16, layers=2, out_dim=8, fp_dim=2048))
    history = meta_train(learner, family, steps=4, shots=2, queries=2, batch_size=2, log_every=2)
    assert len(history) == 2 and torch.isfinite(torch.tensor(history[-1]["loss"]))
    ep = family.sample_tasks(1, 2, 2, torch.Generator().manual_seed(0))
    logits = learner.adapt(ep.support_x[0], ep.support_y[0])(ep.query_x[0])
    assert logits.shape == (4, 2)


@pytest.mark.parametrize("method", [RandomForest(n_estimators=20), KNN(), KNN(neighbours=3)])
def test_baselines_score_queries_and_reject_bad_supports(separable, method):
    task = separable.tasks[0]
    x = task.gather(torch.arange(len(task)))
    scores = method(x[::2], task.labels[::2], x[1::2])
    assert scores.shape == (8,) and ((scores >= 0) & (scores <= 1)).all()
    with pytest.raises(ValueError, match="both actives"):
        method(x[:3], torch.ones(3, dtype=torch.long), x)
    with pytest.raises(ValueError, match="empty support"):
        method(x[:0], task.labels[:0], x)


def test_protonet_rejects_a_one_class_support(separable):
    learner = ProtoNet(MLP(in_features=2048, hidden=(8,)))
    task = separable.tasks[0]
    x = task.gather(torch.arange(4))
    with pytest.raises(ValueError, match="every class present|non-empty"):
        learner.adapt(x, torch.tensor([1, 1, 1, 1]))


def test_gnn_warm_started_from_a_fingerprint_mlp_starts_as_that_mlp():
    torch.manual_seed(0)
    mlp = MLP(in_features=2048, hidden=(32, 16))
    encoder = GNNEncoder(hidden=8, layers=1, graph_dim=8, out_dim=16, fp_dim=2048, fp_hidden=(32, 16))
    encoder.warm_start(mlp)
    table = featurize(["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"], "ecfp+graph", cache=False)
    x = table.features.take(torch.arange(3))
    assert torch.allclose(encoder(x), mlp(x[:, :2048]), atol=1e-6)
    with pytest.raises(ValueError, match="out_dim"):
        GNNEncoder(out_dim=8, fp_dim=2048, fp_hidden=(32, 16)).warm_start(mlp)
