"""Each metric learner and the fine-tuning baseline learns 5-way 1-shot glyphs within a CPU budget.

Meta-train on the ``glyphs`` train classes with a fixed seed, evaluate on held-out test
classes (adapt + predict, 50 fixed episodes, chance = 20%).
"""

import pytest
import torch

from fewshot.algorithms.baseline import FineTune
from fewshot.algorithms.metric import Conv4Maps, MatchingNet, ProtoNet, RelationNet
from fewshot.data import EpisodeSampler, FewShotDataset, get_dataset
from fewshot.engine.evaluate import evaluate
from fewshot.nn import Conv4

HIDDEN = 32


@pytest.fixture(scope="module")
def glyphs():
    return get_dataset("glyphs", split="train"), get_dataset("glyphs", split="test")


def accuracy(model, test) -> float:
    return evaluate(model, test, ways=5, shots=1, queries=5, episodes=50, seed=1).mean


def meta_train(model, train, steps: int, lr: float = 1e-3) -> None:
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr)
    sampler = EpisodeSampler(train, ways=5, shots=1, queries=5, seed=0, batch_size=2)
    for _ in range(steps):
        loss, _ = model.meta_loss(sampler.sample())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


LEARNERS = {
    "protonet": (lambda: ProtoNet(Conv4(hidden=HIDDEN)), 100),
    "matching": (lambda: MatchingNet(Conv4(hidden=HIDDEN)), 100),
    "relation": (lambda: RelationNet(Conv4Maps(hidden=HIDDEN)), 60),
}


@pytest.mark.parametrize("name", LEARNERS)
def test_meta_learner_beats_chance_on_new_classes(glyphs, name):
    train, test = glyphs
    torch.manual_seed(0)
    build, steps = LEARNERS[name]
    model = build()
    before = accuracy(model, test)
    meta_train(model, train, steps)
    after = accuracy(model, test)
    assert after >= 0.5 and after >= before + 0.15, (before, after)


def test_fine_tune_baseline_beats_chance_on_new_classes(glyphs):
    """The paper's recipe: supervised pre-training over global labels (64 train classes, as
    many as miniImageNet has), then a new linear head per task on the frozen encoder."""
    train, test = glyphs
    keep = train.labels < 64
    pretrain = FewShotDataset(train.data[keep], train.labels[keep], classes=train.classes[:64])
    torch.manual_seed(0)
    model = FineTune(Conv4(hidden=HIDDEN), num_classes=64)
    before = accuracy(model, test)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(100):
        index = torch.randint(len(pretrain), (64,), generator=generator)
        loss, _ = model.supervised_loss(pretrain.gather(index), pretrain.labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = accuracy(model, test)
    assert after >= 0.5 and after >= before + 0.15, (before, after)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_fine_tune_episodic_surrogate_learns(glyphs, head):
    train, test = glyphs
    torch.manual_seed(0)
    model = FineTune(Conv4(hidden=HIDDEN), num_classes=train.num_classes, head=head)
    meta_train(model, train, 100)
    assert accuracy(model, test) >= 0.5


@pytest.mark.slow
def test_matching_fce_learns(glyphs):
    train, test = glyphs
    torch.manual_seed(0)
    model = MatchingNet(Conv4(hidden=HIDDEN), fce=True)
    meta_train(model, train, 100)
    assert accuracy(model, test) >= 0.5
