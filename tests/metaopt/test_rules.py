"""The learned rules' maths against hand-written references."""

import math

import pytest
import torch
from torch import nn

from fewshot.metaopt import LSTMRule, MLPRule, preprocess_gradients


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_preprocessing_matches_the_paper():
    g = torch.tensor([0.5, -2.0, 1e-6, -1e-6, 0.0])
    out = preprocess_gradients(g, p=10.0)  # [5, 2]
    expected = [
        [math.log(0.5) / 10, 1.0],
        [math.log(2.0) / 10, -1.0],
        [-1.0, 1e-6 * math.exp(10)],
        [-1.0, -1e-6 * math.exp(10)],
        [-1.0, 0.0],
    ]
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-6, atol=1e-7)


def _scalar_lstm():
    """A one-unit, one-layer LSTM rule with chosen weights, and the same numbers for the hand computation."""
    rule = LSTMRule(hidden=1, layers=1)
    w = {
        "w_ih": [[0.1, 0.2], [0.3, -0.1], [0.5, 0.4], [-0.2, 0.3]],  # rows: input, forget, cell, output gates
        "w_hh": [[0.2], [0.1], [-0.3], [0.4]],
        "b_ih": [0.0, 1.0, 0.0, 0.0],
        "b_hh": [0.1, 0.0, 0.0, -0.1],
    }
    with torch.no_grad():
        rule.cells[0].weight_ih.copy_(torch.tensor(w["w_ih"]))
        rule.cells[0].weight_hh.copy_(torch.tensor(w["w_hh"]))
        rule.cells[0].bias_ih.copy_(torch.tensor(w["b_ih"]))
        rule.cells[0].bias_hh.copy_(torch.tensor(w["b_hh"]))
        rule.head.weight.fill_(2.0)
        rule.head.bias.fill_(0.5)
    return rule, w


def _by_hand(w, x, h, c):
    pre = [
        w["w_ih"][k][0] * x[0] + w["w_ih"][k][1] * x[1] + w["w_hh"][k][0] * h + w["b_ih"][k] + w["b_hh"][k]
        for k in range(4)
    ]
    i, f, g, o = sigmoid(pre[0]), sigmoid(pre[1]), math.tanh(pre[2]), sigmoid(pre[3])
    c = f * c + i * g
    h = o * math.tanh(c)
    return h, c


def test_lstm_update_on_a_hand_computed_example():
    rule, w = _scalar_lstm()
    opt = rule.functional(dict(rule.named_parameters()))
    params = {"theta": torch.tensor([3.0])}
    state = opt.init(params)
    theta, h, c = 3.0, 0.0, 0.0
    for grad in (0.5, 1e-6):  # a large and a tiny gradient: both branches of the preprocessing
        x = (math.log(abs(grad)) / 10, 1.0) if abs(grad) >= math.exp(-10) else (-1.0, grad * math.exp(10))
        h, c = _by_hand(w, x, h, c)
        theta += 0.1 * (2.0 * h + 0.5)
        params, state = opt.step(params, {"theta": torch.tensor([grad])}, state)
        assert params["theta"].item() == pytest.approx(theta, abs=1e-6)
    assert theta == pytest.approx(3.11018, abs=1e-4)  # the same two steps worked out on paper (5 digits)
    assert state[0] == 2 and state[2].item() == 0


def test_lstm_rule_defaults_and_cells_match_torch():
    rule = LSTMRule()
    assert (rule.hidden, rule.layers, rule.preprocess, rule.output_scale) == (20, 2, 10.0, 0.1)
    torch.manual_seed(0)
    g = torch.randn(7) * torch.logspace(-6, 1, 7)
    opt = rule.functional(dict(rule.named_parameters()))
    params = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}
    state = opt.init(params)
    grads = {"a": g[:3], "b": g[3:].view(2, 2)}
    new, state = opt.step(params, grads, state)
    with torch.no_grad():  # the reference: torch's own LSTMCell and Linear on the flat coordinates
        x = preprocess_gradients(g)
        h1, _ = rule.cells[0](x)
        h2, _ = rule.cells[1](h1)
        expected = 0.1 * rule.head(h2).squeeze(-1)
    torch.testing.assert_close(torch.cat([new["a"], new["b"].reshape(-1)]), expected)
    assert state[1][0].shape == (7, 2, 20)  # one hidden state per coordinate and layer


def test_untrained_mlp_rule_is_adam():
    rule = MLPRule(lr=0.01)
    opt = rule.functional(dict(rule.named_parameters()))
    torch.manual_seed(0)
    params = {"w": torch.randn(4, 3), "b": torch.randn(3)}
    reference = [nn.Parameter(p.clone()) for p in params.values()]
    adam = torch.optim.Adam(reference, lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    state = opt.init(params)
    for _ in range(5):
        grads = {k: torch.randn_like(p) * 10 for k, p in params.items()}
        params, state = opt.step(params, grads, state)
        for p, g in zip(reference, grads.values()):
            p.grad = g
        adam.step()
        for mine, theirs in zip(params.values(), reference):
            torch.testing.assert_close(mine, theirs.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [LSTMRule, MLPRule])
def test_rules_are_separable_per_tensor(make):
    """A tensor's update does not depend on the other tensors: what lets the torch optimizer batch freely."""
    torch.manual_seed(1)
    rule = make()
    if isinstance(rule, MLPRule):
        nn.init.normal_(rule.out.weight, std=0.1)
    opt = rule.functional(dict(rule.named_parameters()))
    params = {"a": torch.randn(5), "b": torch.randn(2, 3)}
    grads = {k: torch.randn_like(p) for k, p in params.items()}
    both, _ = opt.step(params, grads, opt.init(params))
    alone, _ = opt.step({"b": params["b"]}, {"b": grads["b"]}, opt.init({"b": params["b"]}))
    torch.testing.assert_close(both["b"], alone["b"])


@pytest.mark.parametrize("fallback_lr", [0.0, 0.5])
def test_non_finite_updates_fall_back_and_are_counted(fallback_lr):
    rule = LSTMRule(fallback_lr=fallback_lr)
    opt = rule.functional(dict(rule.named_parameters()))
    params = {"x": torch.zeros(4)}
    state = opt.init(params)
    params, state = opt.step(params, {"x": torch.tensor([0.1, 0.2, 0.3, 0.4])}, state)
    before = params["x"].clone()
    grads = torch.tensor([float("nan"), float("inf"), 0.3, 0.4])
    params, state = opt.step(params, {"x": grads}, state)
    x = params["x"]
    assert torch.isfinite(x).all()
    assert x[0] == before[0]  # NaN gradient: no fallback step is finite either, the coordinate stays
    assert x[1] == before[1]
    assert state[2].item() == 2  # two coordinates replaced
    h, c = state[1]
    assert (h[:2] == 0).all() and (c[:2] == 0).all() and (h[2:] != 0).any()  # their state reset
    # a finite gradient whose learned update is not finite gets -fallback_lr * g
    with torch.no_grad():
        rule.head.bias.fill_(float("inf"))
    opt = rule.functional(dict(rule.named_parameters()))
    moved, state = opt.step({"x": torch.zeros(2)}, {"x": torch.tensor([1.0, -2.0])}, opt.init({"x": torch.zeros(2)}))
    torch.testing.assert_close(moved["x"], torch.tensor([-fallback_lr, 2 * fallback_lr]))
