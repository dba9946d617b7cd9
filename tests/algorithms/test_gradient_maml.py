"""MAML / FOMAML against hand-written references, finite differences, and each other."""

import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F

from fewshot.algorithms.gradient import FOMAML, MAML
from fewshot.data import Episode, EpisodeSampler, get_dataset
from fewshot.nn import MLP, Conv4


def tiny_mlp(dtype=torch.float32, seed=0) -> MLP:
    torch.manual_seed(seed)
    return MLP(4, (6,), num_classes=3).to(dtype)


def episode(b=2, n=3, k=2, q=3, dim=(4,), dtype=torch.float32, seed=1) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(
        torch.randn(b, n * k, *dim, generator=g, dtype=dtype),
        torch.arange(n).repeat_interleave(k).repeat(b, 1),
        torch.randn(b, n * q, *dim, generator=g, dtype=dtype),
        torch.arange(n).repeat_interleave(q).repeat(b, 1),
    )


def mlp_forward(w, x):
    """The tiny MLP written out by hand: w = [W1, b1, W2, b2]."""
    return torch.relu(x @ w[0].T + w[1]) @ w[2].T + w[3]


def reference_meta_loss(weights, ep, lr, steps, first_order=False):
    """MAML by hand: autograd.grad with create_graph (or detached grads), task by task."""
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast = list(weights)
        for _ in range(steps):
            grads = torch.autograd.grad(F.cross_entropy(mlp_forward(fast, sx), sy), fast, create_graph=not first_order)
            fast = [w - lr * g for w, g in zip(fast, grads)]
        losses.append(F.cross_entropy(mlp_forward(fast, qx), qy))
    return torch.stack(losses).mean()


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_maml_meta_gradient_matches_hand_written_second_order(steps, mode):
    model, ep = tiny_mlp(), episode()
    alg = MAML(model, inner_lr=0.3, inner_steps=steps, task_batching=mode)
    loss, metrics = alg.meta_loss(ep)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref = reference_meta_loss(list(model.parameters()), ep, 0.3, steps)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    torch.testing.assert_close(loss, ref)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    fo_ref = torch.autograd.grad(
        reference_meta_loss(list(model.parameters()), ep, 0.3, steps, True), list(model.parameters())
    )
    assert max(float((g - f).abs().max()) for g, f in zip(grads, fo_ref)) > 1e-4  # truly second order
    assert set(metrics) >= {"loss", "accuracy", "support_loss_before", "support_loss_after"}
    assert metrics["loss"] == pytest.approx(ref.item())


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_matches_finite_differences(steps):
    model, ep = tiny_mlp(torch.float64), episode(dtype=torch.float64)
    alg = MAML(model, inner_lr=0.3, inner_steps=steps)
    loss, _ = alg.meta_loss(ep)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            numeric = torch.empty_like(p)
            for i in range(p.numel()):
                p.view(-1)[i] += eps
                up = alg.meta_loss(ep)[0]
                p.view(-1)[i] -= 2 * eps
                down = alg.meta_loss(ep)[0]
                p.view(-1)[i] += eps
                numeric.view(-1)[i] = (up - down) / (2 * eps)
            torch.testing.assert_close(g, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_first_order_equals_detached_inner_gradients(mode):
    model, ep = tiny_mlp(), episode()
    for alg in (
        FOMAML(model, inner_lr=0.3, inner_steps=2, task_batching=mode),
        MAML(model, inner_lr=0.3, inner_steps=2, first_order=True, task_batching=mode),
    ):
        loss, _ = alg.meta_loss(ep)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        ref = reference_meta_loss(list(model.parameters()), ep, 0.3, 2, first_order=True)
        ref_grads = torch.autograd.grad(ref, list(model.parameters()))
        torch.testing.assert_close(loss, ref)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


def test_regression_uses_mse():
    torch.manual_seed(0)
    model = MLP(1, (8,), num_classes=1)
    g = torch.Generator().manual_seed(0)
    ep = get_dataset("sinusoid").sample_tasks(2, 5, 4, g)
    alg = MAML(model, inner_lr=0.01, inner_steps=1)
    loss, metrics = alg.meta_loss(ep)
    w = list(model.parameters())
    ref = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        grads = torch.autograd.grad(F.mse_loss(mlp_forward(w, sx), sy), w, create_graph=True)
        ref.append(F.mse_loss(mlp_forward([a - 0.01 * b for a, b in zip(w, grads)], qx), qy))
    torch.testing.assert_close(loss, torch.stack(ref).mean())
    assert "mse" in metrics and "accuracy" not in metrics
    assert metrics["mse"] == pytest.approx(metrics["loss"])


def conv4_episode(b=3, seed=0):
    return episode(b=b, n=5, k=1, q=2, dim=(1, 16, 16), seed=seed)


@pytest.mark.parametrize("bn", ["batch", "running"])
def test_vmap_and_loop_agree_on_conv4_with_batchnorm(bn):
    torch.manual_seed(0)
    model = Conv4(hidden=8, num_classes=5, image_size=16)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if "running_var" in name:
                buf.uniform_(0.5, 2.0)
    ep = conv4_episode()
    results = []
    for mode in ("loop", "vmap"):
        alg = MAML(model, inner_lr=0.4, inner_steps=2, bn=bn, task_batching=mode)
        loss, metrics = alg.meta_loss(ep)
        results.append((loss, torch.autograd.grad(loss, list(model.parameters())), metrics))
    (l1, g1, m1), (l2, g2, m2) = results
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert m1["accuracy"] == m2["accuracy"]


def test_batchnorm_policies():
    torch.manual_seed(0)
    model = Conv4(hidden=8, num_classes=5, image_size=16)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if "running_mean" in name:
                buf.normal_()
    before = {k: v.clone() for k, v in model.named_buffers()}
    ep = conv4_episode(b=2)
    # bn="batch": batch statistics whatever the module's mode; buffers untouched
    alg = MAML(model, inner_steps=0)
    batch_stats = torch.stack([copy.deepcopy(model).train()(x) for x in ep.query_x])
    torch.testing.assert_close(alg.query_predictions(ep), batch_stats)
    model.eval()
    torch.testing.assert_close(alg.query_predictions(ep), batch_stats)
    model.train()
    alg.meta_loss(ep)[0].backward()
    # bn="running": the running statistics, as in eval mode; buffers untouched
    running = MAML(model, inner_steps=0, bn="running")
    eval_stats = torch.stack([copy.deepcopy(model).eval()(x) for x in ep.query_x])
    torch.testing.assert_close(running.query_predictions(ep), eval_stats)
    running.meta_loss(ep)[0].backward()
    for k, v in model.named_buffers():
        torch.testing.assert_close(v, before[k])
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("bn", ["batch", "running"])
@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_adapt_predictor_equals_inner_loop_logits(bn, mode):
    torch.manual_seed(0)
    model = Conv4(hidden=8, num_classes=5, image_size=16)
    ep = conv4_episode()
    alg = MAML(model, inner_lr=0.4, inner_steps=2, bn=bn, task_batching=mode)
    logits = alg.query_predictions(ep)  # [B, N*Q, N]
    params = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()  # as evaluate() does
    with torch.no_grad():
        for i in range(ep.batch_size):
            predictor = alg.adapt(ep.support_x[i], ep.support_y[i])
            out = predictor(ep.query_x[i])
            assert not out.requires_grad
            torch.testing.assert_close(out, logits[i].detach(), rtol=1e-5, atol=1e-5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k])


def test_adapt_steps_override():
    model, ep = tiny_mlp(), episode(b=1)
    sx, sy, qx = ep.support_x[0], ep.support_y[0], ep.query_x[0]
    w = [p.detach() for p in model.parameters()]
    for steps in (0, 1, 4):
        fast = [p.clone().requires_grad_() for p in w]
        for _ in range(steps):
            grads = torch.autograd.grad(F.cross_entropy(mlp_forward(fast, sx), sy), fast)
            fast = [(a - 0.3 * g).detach().requires_grad_() for a, g in zip(fast, grads)]
        expected = mlp_forward(fast, qx)
        torch.testing.assert_close(
            MAML(model, inner_lr=0.3, inner_steps=2, adapt_steps=steps).adapt(sx, sy)(qx), expected
        )
        torch.testing.assert_close(MAML(model, inner_lr=0.3, inner_steps=2).adapt(sx, sy, steps=steps)(qx), expected)


def test_bad_settings_fail_clearly():
    with pytest.raises(ValueError, match="inner_steps"):
        MAML(tiny_mlp(), inner_steps=-1)
    with pytest.raises(ValueError, match="task must be one of"):
        MAML(tiny_mlp(), task="ranking")
    with pytest.raises(ValueError, match="bn must be one of"):
        MAML(tiny_mlp(), bn="instance")
    with pytest.raises(ValueError, match="task_batching"):
        MAML(tiny_mlp(), task_batching="threads")
    model = tiny_mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        MAML(model).meta_loss(episode())


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_compiled_path_matches_eager(mode):
    """torch.compile over the per-task function (loop) or the vmapped one, Conv4 with BN;
    ``fullgraph=True`` fails on any graph break. aot_eager keeps it fast on CPU."""
    torch.manual_seed(0)
    model, ep = Conv4(hidden=4, num_classes=5, image_size=16), conv4_episode(b=2)
    eager = MAML(model, inner_lr=0.3, inner_steps=1, task_batching=mode)
    compiled = MAML(
        model, inner_lr=0.3, inner_steps=1, task_batching=mode, compile={"backend": "aot_eager", "fullgraph": True}
    )
    results = []
    for alg in (eager, compiled):
        loss, metrics = alg.meta_loss(ep)
        results.append((loss, torch.autograd.grad(loss, list(model.parameters())), metrics))
    (l1, g1, m1), (l2, g2, m2) = results
    torch.testing.assert_close(l2, l1)
    for g, r in zip(g2, g1):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    assert m1 == pytest.approx(m2)


@pytest.mark.slow
def test_compiled_path_with_inductor():
    model, ep = tiny_mlp(), episode()
    loss, _ = MAML(model, inner_lr=0.3, inner_steps=2, task_batching="loop", compile=True).meta_loss(ep)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    ref = reference_meta_loss(list(model.parameters()), ep, 0.3, 2)
    for g, r in zip(grads, torch.autograd.grad(ref, list(model.parameters()))):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_memory_stays_flat_over_thousands_of_meta_iterations():
    torch.manual_seed(0)
    model = MLP(4, (16,), num_classes=3)
    alg = MAML(model, inner_lr=0.3, inner_steps=2)
    opt = torch.optim.SGD(alg.parameters(), lr=1e-3)
    eps = [episode(seed=s) for s in range(10)]
    rss = {}
    for it in range(1, 2001):
        loss, metrics = alg.meta_loss(eps[it % 10])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it in (200, 2000):
            rss[it] = _rss_mib()
    assert math.isfinite(metrics["loss"])
    assert rss[2000] - rss[200] < 8, rss


def test_maml_lowers_sinusoid_mse_after_adaptation():
    torch.manual_seed(0)
    sinusoid = get_dataset("sinusoid")
    train = EpisodeSampler(sinusoid, ways=1, shots=10, queries=10, seed=0, batch_size=8)
    test = list(EpisodeSampler(sinusoid, ways=1, shots=10, queries=10, seed=123).episodes(50, batch_size=50))[0]
    alg = MAML(MLP(1, (40, 40), num_classes=1), inner_lr=0.01, inner_steps=1, adapt_steps=5)

    def post_adaptation_mse():
        errors = []
        for i in range(test.batch_size):
            predict = alg.adapt(test.support_x[i], test.support_y[i])
            errors.append(float(((predict(test.query_x[i]) - test.query_y[i]) ** 2).mean()))
        return sum(errors) / len(errors)

    before = post_adaptation_mse()
    opt = torch.optim.Adam(alg.parameters(), lr=1e-3)
    for _ in range(600):
        loss, metrics = alg.meta_loss(train.sample())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = post_adaptation_mse()
    unadapted = (
        sum(
            float(
                (
                    (alg.adapt(test.support_x[i], test.support_y[i], steps=0)(test.query_x[i]) - test.query_y[i]) ** 2
                ).mean()
            )
            for i in range(test.batch_size)
        )
        / test.batch_size
    )
    assert after < 0.5 * before, (before, after)
    assert after < 0.8 * unadapted, (unadapted, after)  # the adaptation itself helps
    assert metrics["support_loss_after"] < metrics["support_loss_before"]


def test_zero_head_first_step_gives_the_closed_form_head():
    torch.manual_seed(0)
    model = Conv4(hidden=8, num_classes=5, image_size=16)
    ep = conv4_episode(b=1)
    sx, sy = ep.support_x[0], ep.support_y[0]  # [5, 1, 16, 16], [5]
    alg = FOMAML(model, inner_lr=0.4, zero_head=True)
    adapted = alg.adapted_params(sx, sy, steps=1)
    f = model.features(sx).detach()  # [M, D], batch statistics as in the inner loop
    target = F.one_hot(sy, 5).float() - 1 / 5  # [M, N]: -(softmax(0) - onehot)
    torch.testing.assert_close(adapted["head.weight"], 0.4 * target.T @ f / len(sy))
    torch.testing.assert_close(adapted["head.bias"], 0.4 * target.mean(0))
    for name, p in model.features.named_parameters():  # no gradient reaches the body through a zero head
        torch.testing.assert_close(adapted[f"features.{name}"], p.detach())
    # the module's own head values play no part
    with torch.no_grad():
        model.head.weight.normal_()
    torch.testing.assert_close(alg.adapted_params(sx, sy, steps=1)["head.weight"], adapted["head.weight"])
    loss, _ = alg.meta_loss(ep)
    loss.backward()
    assert torch.count_nonzero(model.head.weight.grad) == 0 and model.features[0][0].weight.grad.abs().sum() > 0


def test_adapt_norm_false_keeps_batchnorm_out_of_the_inner_loop_only():
    torch.manual_seed(0)
    model = Conv4(hidden=8, num_classes=5, image_size=16)
    frozen = copy.deepcopy(model)  # the reference: BatchNorm parameters frozen outright
    for m in frozen.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.requires_grad_(False)
    bns = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    norms = {f"{n}.{p}" for n in bns for p in ("weight", "bias")}
    ep = conv4_episode(b=2)
    alg, ref = MAML(model, inner_lr=0.4, adapt_norm=False), MAML(frozen, inner_lr=0.4)
    adapted = alg.adapted_params(ep.support_x[0], ep.support_y[0])
    for name, p in model.named_parameters():
        if name in norms:
            torch.testing.assert_close(adapted[name], p.detach())
        else:
            assert not torch.equal(adapted[name], p.detach()), name
    loss, _ = alg.meta_loss(ep)
    ref_loss, _ = ref.meta_loss(ep)
    torch.testing.assert_close(loss, ref_loss)
    loss.backward()
    ref_loss.backward()
    for (name, p), q in zip(model.named_parameters(), frozen.parameters()):
        if name in norms:  # the outer loop still trains them
            assert p.grad.abs().sum() > 0 and q.grad is None, name
        else:
            torch.testing.assert_close(p.grad, q.grad)


def test_zero_head_needs_a_head():
    with pytest.raises(ValueError, match="zero_head needs a linear head"):
        MAML(torch.nn.Linear(4, 3), zero_head=True)


def test_inner_optimizers_are_values_and_a_learned_one_needs_no_subclass():
    from fewshot.algorithms.gradient import MetaSGD
    from fewshot.optim import LearnedRates, adam

    model, ep = tiny_mlp(), episode()
    metasgd = MetaSGD(copy.deepcopy(model), inner_lr=0.3, inner_steps=2)
    plugged = MAML(copy.deepcopy(model), inner_lr=0.3, inner_steps=2)
    plugged.inner_opt = LearnedRates(plugged.fast_parameters(), 0.3)  # any learned rule plugs in the same way
    (a, _), (b, _) = metasgd.meta_loss(ep), plugged.meta_loss(ep)
    ga, gb = torch.autograd.grad(a, list(metasgd.parameters())), torch.autograd.grad(b, list(plugged.parameters()))
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(ga, gb))
    assert len(ga) == 8 and all(g.abs().sum() > 0 for g in ga[4:])  # the rates are meta-trained
    by_name = MAML(copy.deepcopy(model), inner_lr=0.05, inner_steps=2, inner_opt="adam")
    by_value = MAML(copy.deepcopy(model), inner_lr=0.05, inner_steps=2, inner_opt=adam(0.05))
    sgd_loss = MAML(copy.deepcopy(model), inner_lr=0.05, inner_steps=2).meta_loss(ep)[0]
    assert torch.equal(by_name.meta_loss(ep)[0], by_value.meta_loss(ep)[0]) and not torch.equal(
        by_name.meta_loss(ep)[0], sgd_loss
    )
