"""Searching ProtoNet's backbone on episodes (tiny synthetic images, so it runs in seconds)."""

import torch

from fewshot.data import FewShotDataset
from fewshot.nas import search
from fewshot.nas.darts import DartsNetwork
from fewshot.nas.learner_search import EpisodeSettings, FewShotBackboneProblem, darts_protonet
from fewshot.nas.spaces.darts_cells import DartsCellSpace
from fewshot.nas.strategies import make_strategy


def _episodes():
    g = torch.Generator().manual_seed(0)
    protos = torch.rand(12, 1, 8, 8, generator=g)  # 12 classes of noisy 8x8 patterns
    labels = torch.arange(12).repeat_interleave(6)
    images = (protos[labels] + 0.2 * torch.randn(len(labels), 1, 8, 8, generator=g)).clamp(0, 1)
    train = FewShotDataset(images[labels < 8], labels[labels < 8], classes=[str(c) for c in range(8)])
    val = FewShotDataset(images[labels >= 8], labels[labels >= 8] - 8, classes=[str(c) for c in range(4)])
    return EpisodeSettings(dataset={"train": train, "val": val}, ways=3, shots=1, queries=2)


def test_darts_on_protonet_episodes_updates_the_architecture():
    result = darts_protonet(
        _episodes(), channels=2, layers=2, nodes=2, stem_stride=1, epochs=2, steps_per_epoch=2, alpha_lr=0.05
    )
    assert len(result.epochs) == 2 and result.genotype.nodes == 2
    weights = result.epochs[-1]["normal"]
    assert abs(sum(weights.values()) - 1) < 1e-5 and max(weights.values()) > 1 / len(weights)  # alphas moved
    net = DartsNetwork(result.genotype, in_channels=1, channels=2, layers=2)  # the found genotype is a backbone
    assert net(torch.rand(4, 1, 8, 8)).shape == (4, net.out_features)


def test_evolution_over_cells_on_episodes():
    problem = FewShotBackboneProblem(
        _episodes(), DartsCellSpace(nodes=2), channels=2, layers=2, stem_stride=1, train_steps=2, eval_episodes=3
    )
    result = search(problem, make_strategy("evolution", problem.space, population=2, sample=2), budget=3, seed=0)
    assert result.queries == 3 and all(0 <= r["metric"] <= 100 and r["params"] > 0 for r in result.history)
    assert problem.space.parse(result.best) in [problem.space.parse(r["arch"]) for r in result.history]


def test_darts_on_first_order_maml_keeps_alphas_out_of_the_inner_loop():
    from fewshot.nas.learner_search import darts_fomaml

    result = darts_fomaml(
        _episodes(), channels=2, layers=2, nodes=2, stem_stride=1, epochs=1, steps_per_epoch=2, alpha_lr=0.05
    )
    weights = result.epochs[-1]["normal"]
    assert max(weights.values()) > 1 / len(weights) + 1e-4  # the architecture moved on the query loss


def test_moved_out_alphas_are_not_parameters_of_the_model_but_still_used():
    from fewshot.nas.darts import Supernet

    net = Supernet(in_channels=1, channels=2, layers=2, nodes=2, num_classes=3, seed=0)
    holder = net.move_alphas_out()
    assert not any(n.startswith("alpha_") for n, _ in net.named_parameters())
    assert net.arch_parameters()[0] is holder.alpha_normal
    net(torch.rand(4, 1, 8, 8)).sum().backward()
    assert holder.alpha_normal.grad is not None and holder.alpha_normal.grad.abs().sum() > 0
