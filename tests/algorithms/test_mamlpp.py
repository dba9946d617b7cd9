"""MAML++ options (LSLR, multi-step loss, derivative-order annealing, per-step BatchNorm) and
hypergradient descent on the outer rate, against MAML and hand-written references."""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny import clustered, config
from torch import nn

from fewshot.algorithms.gradient import ANIL, FOMAML, MAML, MetaSGD, Reptile
from fewshot.algorithms.gradient.mamlpp import msl_weights
from fewshot.data import Episode
from fewshot.engine import Trainer
from fewshot.engine.checkpoint import read_training_state
from fewshot.engine.config import TrainConfig
from fewshot.engine.optimizers import SGDHD, AdamHD, lr_factor, make_optimizer
from fewshot.nn import MLP
from fewshot.optim import PerStepRates


def tiny_mlp(seed=0) -> MLP:
    torch.manual_seed(seed)
    return MLP(4, (6,), num_classes=3)


def episode(b=2, n=3, k=2, q=3, seed=1) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(
        torch.randn(b, n * k, 4, generator=g),
        torch.arange(n).repeat_interleave(k).repeat(b, 1),
        torch.randn(b, n * q, 4, generator=g),
        torch.arange(n).repeat_interleave(q).repeat(b, 1),
    )


def mlp_forward(w, x):
    """The tiny MLP by hand: w = [W1, b1, W2, b2]."""
    return torch.relu(x @ w[0].T + w[1]) @ w[2].T + w[3]


def meta_grads(alg, ep, params=None):
    loss, _ = alg.meta_loss(ep)
    params = list(alg.model.parameters()) if params is None else params
    return loss, torch.autograd.grad(loss, params)


# -- with its options off, MAML++ is MAML -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_mamlpp_with_its_options_off_equals_maml_exactly(mode):
    model, ep = tiny_mlp(), episode()
    plain = MAML(model, inner_lr=0.3, inner_steps=3, task_batching=mode)
    # the annealing options at settings that leave nothing to anneal: the final-step loss, second order throughout
    off = MAML(model, inner_lr=0.3, inner_steps=3, task_batching=mode, multi_step_loss=0, second_order_from=0)
    for _ in range(2):  # before and after the meta-step counter moved
        (l1, g1), (l2, g2) = meta_grads(plain, ep), meta_grads(off, ep)
        assert torch.equal(l1, l2)
        assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    assert int(off.meta_step) == 2 and "meta_step" not in dict(plain.named_buffers())
    assert set(plain.state_dict()) == {f"model.{k}" for k in model.state_dict()}  # checkpoints of MAML unchanged


def reference_lslr_loss(weights, rates, ep, steps):
    """MAML with per-tensor per-step rates by hand: rates[i][j] is tensor j's rate at step i."""
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast = list(weights)
        for i in range(steps):
            grads = torch.autograd.grad(F.cross_entropy(mlp_forward(fast, sx), sy), fast, create_graph=True)
            fast = [w - rates[i][j] * g for j, (w, g) in enumerate(zip(fast, grads))]
        losses.append(F.cross_entropy(mlp_forward(fast, qx), qy))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_lslr_rates_receive_gradients_and_start_as_maml(mode):
    model, ep = tiny_mlp(), episode()
    lslr = MAML(model, inner_lr=0.3, inner_steps=3, lslr=True, task_batching=mode)
    plain = MAML(model, inner_lr=0.3, inner_steps=3, task_batching=mode)
    rates = dict(lslr.inner_opt.named_parameters())
    assert set(rates) == {f"lrs.{k.replace('.', '__')}" for k, _ in model.named_parameters()}
    assert all(r.shape == (3,) for r in rates.values())
    loss, grads = meta_grads(lslr, ep, [*model.parameters(), *rates.values()])
    ref_loss, ref_grads = meta_grads(plain, ep)
    assert torch.equal(loss, ref_loss)  # the same loss and meta-gradient on theta before any update of the rates
    assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads))
    # the rates' gradients, against a hand-written inner loop with a tensor per rate
    weights = list(model.parameters())
    per_step = [[torch.tensor(0.3, requires_grad=True) for _ in weights] for _ in range(3)]
    ref = reference_lslr_loss(weights, per_step, ep, 3)
    ref_rate_grads = torch.autograd.grad(ref, [r for row in per_step for r in row])
    names = [k.replace(".", "__") for k, _ in model.named_parameters()]
    rate_grads = dict(zip(rates, grads[len(weights) :]))
    for i in range(3):
        for j, name in enumerate(names):
            torch.testing.assert_close(
                rate_grads[f"lrs.{name}"][i], ref_rate_grads[i * len(weights) + j], atol=1e-6, rtol=1e-4
            )
    assert all(g.abs().sum() > 0 for g in grads[len(weights) :])


def test_lslr_past_its_trained_steps_reuses_the_last_rates():
    params = {"w": torch.zeros(2)}
    rule = PerStepRates(params, lr=0.1, steps=2)
    with torch.no_grad():
        rule.lrs["w"].copy_(torch.tensor([0.1, 0.5]))
    opt = rule.functional(dict(rule.named_parameters()))
    p, t = params, opt.init(params)
    for expected in (-0.1, -0.6, -1.1, -1.6):  # steps 0, 1, then 1's rate again
        p, t = opt.step(p, {"w": torch.ones(2)}, t)
        torch.testing.assert_close(p["w"], torch.full((2,), expected))
    assert t == 4
    model = tiny_mlp()
    alg = MAML(model, inner_lr=0.3, inner_steps=2, lslr=True)
    ep = episode()
    plain = MAML(model, inner_lr=0.3, inner_steps=2)  # equal rates: any number of steps agrees
    alg.eval()
    out = alg.adapt(ep.support_x[0], ep.support_y[0], steps=4)(ep.query_x[0])
    torch.testing.assert_close(out, plain.adapt(ep.support_x[0], ep.support_y[0], steps=4)(ep.query_x[0]))


# -- the multi-step loss --------------------------------------------------------------------------------


def test_msl_weights_anneal_from_uniform_to_the_last_step():
    assert msl_weights(5, 0.0) == pytest.approx([0.2] * 5)
    assert msl_weights(5, 1.0) == pytest.approx([0.006] * 4 + [1 - 4 * 0.006])
    for progress in (0.0, 0.3, 0.7, 1.0):
        assert sum(msl_weights(5, progress)) == pytest.approx(1.0)
    half = msl_weights(4, 0.5)
    assert half[:3] == pytest.approx([0.125] * 3) and half[3] == pytest.approx(0.25 + 0.5 * 3 / 4)
    assert msl_weights(1, 0.4) == [1.0]


def reference_msl_loss(weights, ep, lr, step_weights):
    """sum_i w_i * query loss after inner step i, mean over tasks, second order, by hand."""
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast, total = list(weights), 0.0
        for w_i in step_weights:
            grads = torch.autograd.grad(F.cross_entropy(mlp_forward(fast, sx), sy), fast, create_graph=True)
            fast = [w - lr * g for w, g in zip(fast, grads)]
            total = total + w_i * F.cross_entropy(mlp_forward(fast, qx), qy)
        losses.append(total)
    return torch.stack(losses).mean()


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_multi_step_loss_equals_a_hand_written_loop_over_steps(mode):
    model, ep = tiny_mlp(), episode()
    alg = MAML(model, inner_lr=0.3, inner_steps=3, multi_step_loss=4, task_batching=mode)
    plain = MAML(model, inner_lr=0.3, inner_steps=3, task_batching=mode)
    weights = list(model.parameters())
    for t in range(6):
        loss, grads = meta_grads(alg, ep)
        if t < 4:
            ref = reference_msl_loss(weights, ep, 0.3, msl_weights(3, t / 4))
            ref_grads = torch.autograd.grad(ref, weights)
            torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-7)
        else:  # annealed: the last step's loss alone, as MAML
            ref, ref_grads = meta_grads(plain, ep)
            assert torch.equal(loss, ref)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    assert int(alg.meta_step) == 6
    alg.eval()  # outside training: the last step's loss, and no count
    torch.testing.assert_close(alg.meta_loss(ep)[0], plain.meta_loss(ep)[0])
    assert int(alg.meta_step) == 6


# -- derivative-order annealing ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_derivative_order_switches_from_first_to_second_order_at_the_set_meta_step(mode):
    model, ep = tiny_mlp(), episode()
    alg = MAML(model, inner_lr=0.3, inner_steps=2, second_order_from=2, task_batching=mode)
    first = FOMAML(model, inner_lr=0.3, inner_steps=2, task_batching=mode)
    second = MAML(model, inner_lr=0.3, inner_steps=2, task_batching=mode)
    _, fo = meta_grads(first, ep)
    _, so = meta_grads(second, ep)
    assert max(float((a - b).abs().max()) for a, b in zip(fo, so)) > 1e-4  # the two orders differ here
    for t, expected in enumerate((fo, fo, so, so)):
        _, grads = meta_grads(alg, ep)
        assert all(torch.equal(g, e) for g, e in zip(grads, expected)), t
    # the count is a buffer: a copy loaded from the weights continues the schedule
    again = MAML(tiny_mlp(seed=3), inner_lr=0.3, inner_steps=2, second_order_from=2, task_batching=mode)
    again.load_state_dict(alg.state_dict())
    assert int(again.meta_step) == 4
    assert all(torch.equal(g, e) for g, e in zip(meta_grads(again, ep)[1], so))


# -- per-step BatchNorm ---------------------------------------------------------------------------------


class BNNet(nn.Module):
    """linear - BatchNorm1d - ReLU - linear head."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.fc(x))))


def bn_forward(w, gamma, beta, x, stats=None):
    """BNNet by hand: w = [fc.weight, fc.bias, head.weight, head.bias]; batch statistics, or (mean, var)."""
    h = x @ w[0].T + w[1]
    if stats is None:
        mean, var = h.mean(0), h.var(0, unbiased=False)
    else:
        mean, var = stats
    return torch.relu((h - mean) / torch.sqrt(var + 1e-5) * gamma + beta) @ w[2].T + w[3]


def reference_per_step_bn(weights, gammas, betas, ep, lr, steps):
    """MAML with BatchNorm weights and biases per step, second order; also each step's support batch
    statistics of the BatchNorm input ([steps] of (mean, unbiased var) per task)."""
    losses, stats = [], []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast, seen = list(weights), []
        for i in range(steps):
            h = (sx @ fast[0].T + fast[1]).detach()
            seen.append((h.mean(0), h.var(0, unbiased=True)))
            loss = F.cross_entropy(bn_forward(fast, gammas[i], betas[i], sx), sy)
            grads = torch.autograd.grad(loss, fast, create_graph=True)
            fast = [w - lr * g for w, g in zip(fast, grads)]
        losses.append(F.cross_entropy(bn_forward(fast, gammas[steps - 1], betas[steps - 1], qx), qy))
        stats.append(seen)
    return torch.stack(losses).mean(), stats


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_per_step_batchnorm_weights_and_statistics_are_per_step(mode):
    model, ep = BNNet(), episode()
    alg = MAML(model, inner_lr=0.3, inner_steps=3, per_step_bn=True, bn="running", task_batching=mode)
    norm = alg.step_norm
    with torch.no_grad():  # make the steps' weights and biases differ
        norm.weight["bn"].copy_(torch.tensor([[1.0], [0.5], [2.0]]).expand(3, 6))
        norm.bias["bn"].copy_(torch.tensor([[0.0], [0.3], [-0.2]]).expand(3, 6))
    fast = [model.fc.weight, model.fc.bias, model.head.weight, model.head.bias]
    assert set(alg.fast_parameters()) == {"fc.weight", "fc.bias", "head.weight", "head.bias"}
    loss, grads = meta_grads(alg, ep, [*fast, norm.weight["bn"], norm.bias["bn"]])
    ref, stats = reference_per_step_bn(fast, norm.weight["bn"], norm.bias["bn"], ep, 0.3, 3)
    ref_grads = torch.autograd.grad(ref, [*fast, norm.weight["bn"], norm.bias["bn"]])
    torch.testing.assert_close(loss, ref)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    assert grads[-1].abs().sum(1).min() > 0  # every step's bias is used, and learns
    # one training meta-step moved each step's running statistics towards that step's batch statistics
    for i in range(3):
        mean = torch.stack([task[i][0] for task in stats]).mean(0)
        var = torch.stack([task[i][1] for task in stats]).mean(0)
        torch.testing.assert_close(norm.bn__mean[i], 0.1 * mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(norm.bn__var[i], 0.9 + 0.1 * var, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(norm.bn__mean[0], norm.bn__mean[1])
    # adapt normalises each step with that step's statistics
    alg.eval()
    sx, sy, qx = ep.support_x[0], ep.support_y[0], ep.query_x[0]
    w = [p.detach() for p in fast]
    gammas, betas, means, vars_ = (
        t.detach() for t in (norm.weight["bn"], norm.bias["bn"], norm.bn__mean, norm.bn__var)
    )
    for i in range(2):
        with torch.enable_grad():
            w = [p.requires_grad_() for p in w]
            loss = F.cross_entropy(bn_forward(w, gammas[i], betas[i], sx, (means[i], vars_[i])), sy)
            w = [p - 0.3 * g for p, g in zip(w, torch.autograd.grad(loss, w))]
    expected = bn_forward([p.detach() for p in w], gammas[1], betas[1], qx, (means[1], vars_[1]))
    torch.testing.assert_close(alg.adapt(sx, sy, steps=2)(qx), expected, rtol=1e-5, atol=1e-6)


def test_per_step_batchnorm_under_batch_statistics_keeps_no_running_statistics():
    model, ep = BNNet(), episode()
    alg = MAML(model, inner_lr=0.3, inner_steps=2, per_step_bn=True)
    assert not list(alg.step_norm.buffers())
    alg.meta_loss(ep)[0].backward()
    assert model.bn.weight.grad is None  # the layer's own weight gives way to the per-step ones
    assert alg.step_norm.weight["bn"].grad.shape == (2, 6)
    with torch.no_grad():
        logits = alg.query_predictions(ep)
    alg.eval()
    torch.testing.assert_close(alg.adapt(ep.support_x[1], ep.support_y[1])(ep.query_x[1]), logits[1])


# -- option checks ------------------------------------------------------------------------------------


def test_mamlpp_options_are_checked_and_refused_where_they_do_not_apply():
    with pytest.raises(ValueError, match="first_order"):
        MAML(tiny_mlp(), second_order_from=10, first_order=True)
    with pytest.raises(ValueError, match="multi_step_loss"):
        MAML(tiny_mlp(), multi_step_loss=-1)
    with pytest.raises(ValueError, match="inner_opt"):
        MAML(tiny_mlp(), lslr=True, inner_opt="adam")
    with pytest.raises(ValueError, match="BatchNorm"):
        MAML(tiny_mlp(), per_step_bn=True)
    with pytest.raises(ValueError, match="Reptile"):
        Reptile(tiny_mlp(), lslr=True)
    with pytest.raises(ValueError, match="per_step_bn"):
        ANIL(BNNet(), per_step_bn=True)
    with pytest.raises(ValueError, match="lslr"):
        MetaSGD(tiny_mlp(), lslr=True)
    anil = ANIL(tiny_mlp(), inner_steps=2, lslr=True)  # LSLR on any gradient algorithm: the head's rates
    assert anil.inner_opt.names() == {"head.weight", "head.bias"}


# -- hypergradient descent on the outer rate ------------------------------------------------------------


def quadratic():
    """f(x) = 0.5 x^T A x - b^T x on x [3], A positive definite."""
    a = torch.tensor([[3.0, 0.5, 0.0], [0.5, 2.0, 0.2], [0.0, 0.2, 1.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return a, b


def test_sgd_hypergradient_descent_follows_the_formula_on_a_quadratic():
    a, b = quadratic()
    x = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = SGDHD([x], lr=0.05, hypergradient_lr=0.01, momentum=0.0)
    ref_x, alpha, prev = torch.zeros(3, dtype=torch.float64), 0.05, None
    for _ in range(6):
        opt.zero_grad()
        (0.5 * x @ a @ x - b @ x).backward()
        opt.step()
        g = a @ ref_x - b  # Baydin et al., SGD-HD: alpha_t = alpha_{t-1} + beta g_t . g_{t-1}
        if prev is not None:
            alpha = alpha + 0.01 * float(g @ prev)
        ref_x, prev = ref_x - alpha * g, g
        assert opt.param_groups[0]["hd_lr"] == pytest.approx(alpha, rel=1e-12)
        torch.testing.assert_close(x.detach(), ref_x)
    assert alpha > 0.05  # on a quadratic from far away the rate grows


def test_adam_hypergradient_descent_follows_the_formula_and_survives_a_scheduler_and_a_reload():
    a, b = quadratic()
    x = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = AdamHD([x], lr=0.01, hypergradient_lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)  # as the trainer drives it
    ref_x, alpha, m, v, u = torch.zeros(3, dtype=torch.float64), 0.01, 0.0, 0.0, None
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, 8):
        opt.zero_grad()
        (0.5 * x @ a @ x - b @ x).backward()
        opt.step()
        sched.step()
        g = a @ ref_x - b  # Adam-HD: alpha_t = alpha_{t-1} + beta g_t . m_hat_{t-1} / (sqrt(v_hat_{t-1}) + eps)
        if u is not None:
            alpha = alpha + 1e-3 * float(g @ u)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / (v.sqrt() / math.sqrt(1 - b2**t) + eps)
        ref_x = ref_x - alpha * u
        assert opt.param_groups[0]["hd_lr"] == pytest.approx(alpha, rel=1e-10)
        torch.testing.assert_close(x.detach(), ref_x)
    # the learned rate travels with the optimizer's state (a resumed run continues it)
    y = nn.Parameter(x.detach().clone())
    again = AdamHD([y], lr=0.01, hypergradient_lr=1e-3)
    again.load_state_dict(opt.state_dict())
    assert again.param_groups[0]["hd_lr"] == pytest.approx(alpha, rel=1e-12)


def test_hypergradient_is_a_schedule_of_the_training_config():
    config = TrainConfig(schedule="hypergradient", optimizer="sgd", lr=0.1, steps=10)
    opt = make_optimizer(config, [nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, SGDHD) and opt.param_groups[0]["hypergradient_lr"] == 1e-3
    assert lr_factor(config, 7) == 1.0
    assert isinstance(make_optimizer(config.replace(optimizer="adam"), [nn.Parameter(torch.zeros(2))]), AdamHD)
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(schedule="hypergradient", warmup=5)
    with pytest.raises(ValueError, match="hypergradient_lr"):
        TrainConfig(schedule="hypergradient", hypergradient_lr=-1.0)
    cosine = TrainConfig(schedule="cosine", lr=1e-3, min_lr=1e-5, steps=100)
    assert lr_factor(cosine, 0) == pytest.approx(1.0) and lr_factor(cosine, 100) == pytest.approx(0.01)
    assert lr_factor(TrainConfig(schedule="cosine", steps=100), 100) == pytest.approx(0.0)


# -- in the trainer: a resumed run continues every schedule exactly ------------------------------------------


def test_a_resumed_mamlpp_run_with_a_hypergradient_rate_equals_an_uninterrupted_one(tmp_path):
    def run(folder, resume=False, callback=None):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        options = dict(lslr=True, multi_step_loss=4, second_order_from=6, per_step_bn=True, bn="running")
        alg = MAML(model, inner_lr=0.3, inner_steps=2, **options)
        cfg = config(folder, schedule="hypergradient", warmup=0, hypergradient_lr=1e-4, test_episodes=0)
        trainer = Trainer(cfg, alg, clustered(), clustered(seed=1), None, resume=resume)
        result = trainer.fit(callback=callback)
        return trainer, result

    full, _ = run(tmp_path / "a")

    def stop_at_5(step, metrics):
        if step == 5:
            raise KeyboardInterrupt

    _, first = run(tmp_path / "b", callback=stop_at_5)
    assert first.interrupted and read_training_state(tmp_path / "b" / "run" / "last")["step"] == 5
    resumed, result = run(tmp_path / "b", resume=True)
    assert result.step == 12 and int(resumed.algorithm.meta_step) == 12
    a, b = full.algorithm.state_dict(), resumed.algorithm.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rate = full.optimizer.param_groups[0]["hd_lr"]
    assert rate != 0.01 and resumed.optimizer.param_groups[0]["hd_lr"] == rate
