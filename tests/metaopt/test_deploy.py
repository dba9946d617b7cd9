"""The three deployments give the same update: functional, torch.optim.Optimizer, MAML's inner optimizer."""

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fewshot.algorithms.gradient.maml import MAML
from fewshot.data import Episode
from fewshot.engine.checkpoint import CheckpointError, save_checkpoint
from fewshot.metaopt import LearnedOptimizer, LSTMRule, MLPRule, load_rule, save_rule

STEPS = 3


def make_rule(kind):
    torch.manual_seed(0)
    rule = LSTMRule() if kind == "lstm" else MLPRule(lr=0.05)
    if kind == "mlp":
        nn.init.normal_(rule.out.weight, std=0.3)
    return rule


def task():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    return model, torch.randn(12, 4, generator=g), torch.arange(3).repeat(4)


def functional_updates(rule, model, x, y):
    opt = rule.functional({k: v.detach() for k, v in rule.named_parameters()})
    params = {k: v.detach() for k, v in model.named_parameters()}
    state = opt.init(params)
    for _ in range(STEPS):
        point = {k: v.requires_grad_() for k, v in params.items()}
        grads = torch.autograd.grad(F.cross_entropy(functional_call(model, point, (x,)), y), list(point.values()))
        params, state = opt.step({k: v.detach() for k, v in point.items()}, dict(zip(point, grads)), state)
    return params


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_three_deployments_agree(kind, tmp_path):
    rule = make_rule(kind)
    model, x, y = task()
    expected = functional_updates(rule, model, x, y)

    save_rule(tmp_path / "rule", rule)
    as_torch = copy.deepcopy(model)
    optimizer = LearnedOptimizer(as_torch.parameters(), tmp_path / "rule")  # from its checkpoint folder
    for _ in range(STEPS):
        optimizer.zero_grad()
        F.cross_entropy(as_torch(x), y).backward()
        optimizer.step()
    for k, p in as_torch.named_parameters():
        torch.testing.assert_close(p.detach(), expected[k], rtol=1e-5, atol=1e-6)
    assert optimizer.nonfinite == 0

    maml = MAML(copy.deepcopy(model), inner_steps=STEPS, inner_opt=rule, task="classification")
    adapted = maml.adapted_params(x, y)
    for k in expected:
        torch.testing.assert_close(adapted[f"{k}"], expected[k], rtol=1e-5, atol=1e-6)


def test_maml_trains_the_learned_rule_as_a_submodule():
    rule = make_rule("lstm")
    model, x, y = task()
    maml = MAML(model, inner_steps=2, inner_opt=rule, task="classification")
    assert any(n.startswith("inner_opt.") for n, _ in maml.named_parameters())
    episode = Episode(x[None], y[None], x[None], y[None])
    loss, _ = maml.meta_loss(episode)
    loss.backward()
    assert rule.head.weight.grad is not None and rule.head.weight.grad.abs().sum() > 0


def test_torch_optimizer_state_round_trips_and_skips_params_without_grad():
    rule = make_rule("lstm")
    model, x, y = task()
    frozen = nn.Parameter(torch.ones(2))
    optimizer = LearnedOptimizer([*model.parameters(), frozen], rule)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    assert frozen not in optimizer.state and torch.equal(frozen.detach(), torch.ones(2))
    other = LearnedOptimizer([*model.parameters(), frozen], rule)
    other.load_state_dict(optimizer.state_dict())
    first = next(model.parameters())
    assert other.state[first]["step"] == 1
    torch.testing.assert_close(other.state[first]["coords0"], optimizer.state[first]["coords0"])


def test_torch_optimizer_reports_non_finite_updates(caplog):
    rule = make_rule("lstm")
    p = nn.Parameter(torch.zeros(3))
    optimizer = LearnedOptimizer([p], rule)
    p.grad = torch.tensor([1.0, float("nan"), 2.0])
    with caplog.at_level(logging.WARNING, logger="fewshot.metaopt"):
        optimizer.step()
    assert optimizer.nonfinite == 1 and torch.isfinite(p).all() and p[1] == 0
    assert "non-finite" in caplog.text


def test_checkpoint_round_trip_and_wrong_kind(tmp_path):
    rule = MLPRule(hidden=8, lr=0.02)
    save_rule(tmp_path / "run" / "checkpoint", rule, training={"optimizee": "quadratic"})
    loaded = load_rule(tmp_path / "run")  # a run folder finds its checkpoint/
    assert isinstance(loaded, MLPRule) and loaded.settings() == rule.settings()
    for (k, a), b in zip(rule.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert load_rule(tmp_path / "run", fallback_lr=0.1).fallback_lr == 0.1
    save_checkpoint(tmp_path / "learner", {"w": torch.zeros(1)}, {"learner": {"algorithm": "protonet"}})
    with pytest.raises(CheckpointError, match="a learner checkpoint, not a learned optimizer"):
        load_rule(tmp_path / "learner")
    with pytest.raises(CheckpointError, match="a learner checkpoint, not a learned optimizer"):
        LearnedOptimizer([nn.Parameter(torch.zeros(1))], tmp_path / "learner")
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        load_rule(tmp_path / "missing")


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_maml_with_a_learned_rule_under_vmap_matches_the_loop(kind):
    rule = make_rule(kind)
    model, x, y = task()
    episode = Episode(torch.stack([x, x.flip(0)]), torch.stack([y, y]), torch.stack([x, x]), torch.stack([y, y]))
    losses = []
    for batching in ("loop", "vmap"):
        maml = MAML(copy.deepcopy(model), inner_steps=2, inner_opt=rule, task="classification", task_batching=batching)
        loss, _ = maml.meta_loss(episode)
        (grad,) = torch.autograd.grad(loss, [rule.head.weight if kind == "lstm" else rule.log_lr])
        losses.append((loss.detach(), grad))
    torch.testing.assert_close(losses[0][0], losses[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses[0][1], losses[1][1], rtol=1e-4, atol=1e-6)


def test_untrained_rules_by_name_as_inner_optimizers():
    model, x, y = task()  # the names are registered in the core's INNER_OPTIMIZERS, imported on first use
    maml = MAML(model, inner_lr=0.1, inner_steps=1, inner_opt="learned-mlp", task="classification")
    assert isinstance(maml.inner_opt, MLPRule) and maml.inner_opt.lr == 0.1
    reference = MAML(copy.deepcopy(model), inner_lr=0.1, inner_steps=1, task="classification")
    one_adam_step = reference.adapted_params(x, y)  # SGD from the same start; Adam's first step is lr * sign(g)
    adapted = maml.adapted_params(x, y)
    for k, p in model.named_parameters():
        torch.testing.assert_close(adapted[k], p - 0.1 * torch.sign(p - one_adam_step[k]), rtol=1e-4, atol=1e-5)
    lstm = MAML(copy.deepcopy(model), inner_opt="learned-lstm", task="classification")
    assert isinstance(lstm.inner_opt, LSTMRule) and any(n.startswith("inner_opt.") for n, _ in lstm.named_parameters())
