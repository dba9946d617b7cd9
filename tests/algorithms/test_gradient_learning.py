"""Every gradient method learns: 5-way 1-shot accuracy on unseen ``glyphs`` classes
(16x16 renders, a small Conv4) rises well above chance (20%) within a CPU budget."""

import pytest
import torch

from fewshot.algorithms.gradient import ANIL, FOMAML, MAML, MetaSGD, Reptile
from fewshot.data import EpisodeSampler, get_dataset
from fewshot.engine.evaluate import evaluate
from fewshot.nn import Conv4

SIZE = 16


@pytest.fixture(scope="module")
def glyphs():
    return get_dataset("glyphs", split="train", image_size=SIZE), get_dataset("glyphs", split="test", image_size=SIZE)


# name -> (algorithm factory, outer optimizer factory, meta-iterations)
SETUPS = {
    "maml": (
        lambda m: MAML(m, inner_lr=0.4, inner_steps=1, adapt_steps=3),
        lambda p: torch.optim.Adam(p, lr=3e-3),
        100,
    ),
    "fomaml": (
        lambda m: FOMAML(m, inner_lr=0.4, inner_steps=1, adapt_steps=3),
        lambda p: torch.optim.Adam(p, lr=3e-3),
        100,
    ),
    "anil": (
        lambda m: ANIL(m, inner_lr=0.4, inner_steps=1, adapt_steps=3),
        lambda p: torch.optim.Adam(p, lr=3e-3),
        100,
    ),
    "metasgd": (lambda m: MetaSGD(m, inner_lr=0.4, inner_steps=1), lambda p: torch.optim.Adam(p, lr=3e-3), 100),
    # Reptile: plain SGD on the surrogate is the Reptile step (eps = 1); it trains on
    # support + query (6 examples a class), as the paper trains with more shots than it tests.
    "reptile": (
        lambda m: Reptile(m, inner_lr=0.2, inner_steps=3, inner_data="support+query"),
        lambda p: torch.optim.SGD(p, lr=1.0),
        100,
    ),
}


@pytest.mark.parametrize("name", list(SETUPS))
def test_meta_training_lifts_five_way_one_shot_accuracy(name, glyphs):
    train, test = glyphs
    make_algorithm, make_optimizer, iterations = SETUPS[name]
    torch.manual_seed(0)
    alg = make_algorithm(Conv4(hidden=16, num_classes=5, image_size=SIZE))
    before = evaluate(alg, test, ways=5, shots=1, queries=5, episodes=100, seed=1).mean
    sampler = EpisodeSampler(train, ways=5, shots=1, queries=5, seed=0, batch_size=4)
    opt = make_optimizer(alg.parameters())
    for _ in range(iterations):
        loss, metrics = alg.meta_loss(sampler.sample())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate(alg, test, ways=5, shots=1, queries=5, episodes=100, seed=1).mean
    assert after >= 0.35 and after >= before + 0.09, (name, before, after)
    assert 0.0 <= metrics["accuracy"] <= 1.0
