"""The truncated-BPTT meta-gradient against finite differences on a tiny quadratic (float64)."""

import pytest
import torch
from torch import nn

from fewshot.metaopt import LSTMRule, MLPRule, Optimizee
from fewshot.metaopt.train import unroll


class Point(nn.Module):
    def __init__(self, x0):
        super().__init__()
        self.x = nn.Parameter(x0)

    def forward(self, w):
        return w @ self.x


def tiny_quadratic(seed=0, dim=3):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    y = torch.randn(dim, generator=g, dtype=torch.float64)
    x0 = torch.randn(dim, generator=g, dtype=torch.float64)
    return Optimizee("tiny", Point(x0), (w, y), lambda p, t: (p - t).square().sum(), None, seed)


def make_rule(kind):
    torch.manual_seed(0)
    rule = (LSTMRule() if kind == "lstm" else MLPRule(lr=0.05)).double()
    if kind == "mlp":  # the untrained MLP's output layer is zero: give its hidden layers a gradient too
        nn.init.normal_(rule.out.weight, std=0.3)
    return rule


def warm_start(rule, problem):
    """Where a truncation starts: two steps of the rule at its current parameters, detached."""
    opt = rule.functional({k: v.detach() for k, v in rule.named_parameters()})
    params = problem.initial_params()
    _, params, state = unroll(opt, problem, params, opt.init(params), 0, 2)
    state = (state[0], tuple(c.detach() for c in state[1]), state[2].detach())
    return {k: v.detach() for k, v in params.items()}, state


def segment(rule, own, problem, start, grads=None, length=4, second_order=False):
    """The meta-loss of one truncation of ``length`` steps from ``start``, as a function of ``own``; with
    ``grads`` the first-order reference: the optimizee's gradients replayed as constants."""
    params, state = start
    opt = rule.functional(own)
    if grads is None:
        return unroll(opt, problem, params, state, 2, length, second_order)[0]
    total = 0.0
    for i, g in enumerate(grads, start=1):
        params, state = opt.step(params, g, state)
        total = total + problem.loss(params, 2 + i)
    return total


def recorded_gradients(rule, problem, start, length=4):
    """The optimizee gradients seen along the truncation at the rule's parameters."""
    seen = []
    opt = rule.functional({k: v.detach() for k, v in rule.named_parameters()})

    def step(p, g, s):
        seen.append({k: v.detach() for k, v in g.items()})
        return opt.step(p, g, s)

    unroll(opt._replace(step=step), problem, *start, 2, length)
    return seen


def directional_fd(f, own, direction, eps=1e-6):
    plus = {k: v + eps * direction[k] for k, v in own.items()}
    minus = {k: v - eps * direction[k] for k, v in own.items()}
    return (f(plus) - f(minus)).item() / (2 * eps)


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
@pytest.mark.parametrize("second_order", [True, False])
def test_meta_gradient_matches_finite_differences(kind, second_order):
    rule, problem = make_rule(kind), tiny_quadratic()
    start = warm_start(rule, problem)
    own = {k: v.detach().requires_grad_() for k, v in rule.named_parameters()}
    loss = segment(rule, own, problem, start, second_order=second_order)
    meta_grad = torch.autograd.grad(loss, list(own.values()))
    grads = None if second_order else recorded_gradients(rule, problem, start)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in own.items()}
        analytic = sum((d * mg).sum() for d, mg in zip(direction.values(), meta_grad)).item()
        numeric = directional_fd(lambda o: segment(rule, o, problem, start, grads), own, direction)
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7)


def test_first_and_second_order_differ():
    rule, problem = make_rule("lstm"), tiny_quadratic()
    start = warm_start(rule, problem)
    own = {k: v.detach().requires_grad_() for k, v in rule.named_parameters()}
    first = torch.autograd.grad(segment(rule, own, problem, start), list(own.values()))
    second = torch.autograd.grad(segment(rule, own, problem, start, second_order=True), list(own.values()))
    assert not all(torch.allclose(a, b) for a, b in zip(first, second))
