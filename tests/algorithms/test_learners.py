"""Every registered algorithm honours the Algorithm contract; checkpoints store each fact once and old ones load."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from images import make_tree

from fewshot.algorithms.base import Algorithm
from fewshot.algorithms.spec import LearnerSpec, build_algorithm
from fewshot.cli import main
from fewshot.data import Episode
from fewshot.engine.checkpoint import save_checkpoint
from fewshot.engine.learners import checkpoint_metadata, load_learner
from fewshot.registry import ALGORITHMS

FORMAT_1 = Path(__file__).parents[1] / "fixtures" / "checkpoint-format-1"
TINY_OPTIONS = {"finetune": {"finetune_steps": 3}, "reptile": {"inner_steps": 2}}


def tiny_spec(name: str) -> LearnerSpec:
    return LearnerSpec(
        name,
        "conv4",
        input_shape=(1, 16, 16),
        ways=3,
        num_train_classes=6,
        algorithm_options=TINY_OPTIONS.get(name, {}),
        backbone_options={"hidden": 8},
    )


def tiny_episode(tasks=2, ways=3, shots=2, queries=2, seed=0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(tasks, ways, 1, 1, 16, 16, generator=g)  # one pattern per class
    sx = means.expand(-1, -1, shots, -1, -1, -1) + 0.1 * torch.rand(tasks, ways, shots, 1, 16, 16, generator=g)
    qx = means.expand(-1, -1, queries, -1, -1, -1) + 0.1 * torch.rand(tasks, ways, queries, 1, 16, 16, generator=g)
    labels = lambda k: torch.arange(ways).repeat_interleave(k).repeat(tasks, 1)  # noqa: E731
    return Episode(sx.flatten(1, 2), labels(shots), qx.flatten(1, 2), labels(queries))


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_every_registered_algorithm_keeps_the_contract(name, tmp_path):
    torch.manual_seed(0)
    algorithm = build_algorithm(tiny_spec(name))
    assert isinstance(algorithm, Algorithm)
    episode = tiny_episode()
    loss, metrics = algorithm.meta_loss(episode)
    assert loss.dim() == 0 and loss.requires_grad and torch.isfinite(loss)
    assert {"loss", "accuracy"} <= set(metrics) and all(isinstance(v, float) for v in metrics.values())

    algorithm.eval()
    before = {k: v.clone() for k, v in algorithm.state_dict().items()}
    task = episode.task(0)
    predictor = algorithm.adapt(task.support_x[0], task.support_y[0])
    logits = predictor(task.query_x[0])
    assert logits.shape == (6, 3)  # [N*Q, N]
    after = algorithm.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "adapt changed the learner's own state"

    save_checkpoint(tmp_path / "ck", algorithm.state_dict(), checkpoint_metadata(tiny_spec(name), None))
    loaded, stored = load_learner(tmp_path / "ck")
    again = loaded.adapt(task.support_x[0], task.support_y[0])(task.query_x[0])
    assert stored.spec == tiny_spec(name) and torch.equal(again, logits)


@pytest.mark.parametrize("name", ["protonet", "maml"])
def test_format_1_checkpoints_still_load_and_predict_as_they_did(name):
    """Checkpoints written by fewshot 0.1.0 (tests/fixtures/checkpoint-format-1, with the logits that
    version predicted) load through the same reader and predict the same."""
    expected = json.loads((FORMAT_1 / "expected.json").read_text())["logits"][name]
    algorithm, stored = load_learner(FORMAT_1 / name)
    g = torch.Generator().manual_seed(0)
    sx, sy, qx = torch.rand(3, 1, 8, 8, generator=g), torch.tensor([0, 1, 2]), torch.rand(4, 1, 8, 8, generator=g)
    assert torch.allclose(algorithm.adapt(sx, sy)(qx), torch.tensor(expected), atol=1e-6)
    assert stored.spec.algorithm == name and stored.spec.ways == 3 and stored.spec.preprocessing["image_size"] == 8
    assert stored.config.steps == 2 and stored.config.dataset == "image-folder" and stored.config.eval_shape[0] == 3


def test_a_checkpoint_stores_each_fact_once(tmp_path):
    spec = tiny_spec("protonet")
    from fewshot.engine.config import TrainConfig

    config = TrainConfig(algorithm="protonet", ways=3, backbone_options={"hidden": 8}, out=str(tmp_path))
    save_checkpoint(tmp_path / "ck", build_algorithm(spec).state_dict(), checkpoint_metadata(spec, config, 7, {}))
    text = (tmp_path / "ck" / "checkpoint.json").read_text()
    for fact in ('"algorithm"', '"ways"', '"backbone"', '"preprocessing"'):
        assert text.count(fact) == 1, fact
    _, stored = load_learner(tmp_path / "ck")
    assert stored.config == config and stored.step == 7


class NearestMean(Algorithm):
    """A toy learner for the test below: class means of the encoder's embeddings, negative squared distance."""

    def __init__(self, encoder, temperature: float = 1.0):
        super().__init__()
        self.encoder, self.temperature = encoder, temperature

    def logits(self, sx, sy, qx):  # one task: [S, ...], [S], [Q, ...] -> [Q, N]
        zs, zq = self.encoder(sx), self.encoder(qx)
        means = torch.stack([zs[sy == c].mean(0) for c in range(int(sy.max()) + 1)])
        return -(torch.cdist(zq, means) ** 2) / self.temperature

    def meta_loss(self, episode):
        logits = torch.stack([self.logits(t.support_x[0], t.support_y[0], t.query_x[0]) for t in episode.tasks()])
        loss = F.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten())
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}

    def adapt(self, support_x, support_y):
        return lambda query_x: self.logits(support_x, support_y, query_x)


@pytest.fixture
def toy_registered():
    ALGORITHMS.register("toy-nearest-mean", NearestMean)
    yield
    ALGORITHMS.unregister("toy-nearest-mean")


def test_a_new_algorithm_in_one_class_plus_its_registration_trains_by_name(toy_registered, tmp_path, capsys):
    data = make_tree(tmp_path / "shapes")
    out = tmp_path / "run"
    argv = ["train", "--algorithm", "toy-nearest-mean", "--dataset", "image-folder", "--data-root", str(data)]
    argv += ["--ways", "3", "--steps", "3", "--queries", "2", "--out", str(out), "--quiet", "--test-episodes", "5"]
    argv += ["--set", "dataset_options.image_size=28", "--set", "dataset_options.channels=1"]
    argv += ["--set", "algorithm_options.temperature=2.0", "--set", "val_split=none", "--set", "tensorboard=false"]
    assert main(argv) == 0
    assert "held-out 3-way 1-shot" in capsys.readouterr().out
    algorithm, stored = load_learner(out)
    assert isinstance(algorithm, NearestMean) and algorithm.temperature == 2.0
    assert main(["evaluate", str(out), "--episodes", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 4
    assert main(["list"]) == 0
    assert "toy-nearest-mean  A toy learner for the test below" in capsys.readouterr().out
