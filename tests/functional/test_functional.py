"""fewshot.functional: parameter dicts, BatchNorm policies, pure inner loops, task batching."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot.functional import (
    DecomposedBatchNorm,
    TaskBatcher,
    batch_norm_batch_stats,
    bn_eval,
    call,
    detach,
    functional_buffers,
    inner_loop,
    loop_tasks,
    parameters,
    resolve_mode,
    running_stat_names,
    select,
    strip,
    vmap_tasks,
)
from fewshot.nn import MLP, Conv4
from fewshot.optim import adam, sgd


def test_parameter_dicts_are_the_modules_tensors():
    model = MLP(4, (6,), num_classes=3)
    params = parameters(model)
    assert list(params) == ["features.1.weight", "features.1.bias", "head.weight", "head.bias"]
    assert params["head.weight"] is model.head.weight
    model.head.bias.requires_grad_(False)
    assert "head.bias" not in parameters(model, trainable=True)
    assert list(parameters(model, trainable=False)) == ["head.bias"]
    assert list(select(params, ["head"])) == ["head.weight", "head.bias"]
    assert list(strip(params, "head")) == ["weight", "bias"]
    assert not detach(params)["head.weight"].requires_grad


def test_call_matches_module_and_does_not_touch_it():
    torch.manual_seed(0)
    model = MLP(4, (6,), num_classes=3)
    x = torch.randn(5, 4)
    params = {k: v + 1.0 for k, v in parameters(model).items()}
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        for p in shifted.parameters():
            p.add_(1.0)
    torch.testing.assert_close(call(model, params, {}, x), shifted(x))
    torch.testing.assert_close(call(model, parameters(model), {}, x), model(x))


def test_batch_policy_uses_batch_statistics_and_never_writes_buffers():
    torch.manual_seed(0)
    model = Conv4(hidden=4, num_classes=2, image_size=16)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if "running" in name:
                b.add_(torch.rand_like(b))
    before = {k: v.clone() for k, v in model.named_buffers()}
    x = torch.randn(6, 1, 16, 16)
    reference = copy.deepcopy(model).train()(x)  # batch statistics
    buffers = functional_buffers(model, "batch")
    assert all(buffers[k] is None for k in running_stat_names(model))
    for mode in (True, False):
        model.train(mode)
        torch.testing.assert_close(call(model, parameters(model), buffers, x), reference)
    vmapped = torch.func.vmap(lambda xi: call(model, parameters(model), buffers, xi))(x.view(2, 3, 1, 16, 16))
    assert vmapped.shape == (2, 3, 2)
    for k, v in model.named_buffers():
        torch.testing.assert_close(v, before[k])


def test_bn_eval_uses_running_statistics_and_restores_modes():
    torch.manual_seed(0)
    model = Conv4(hidden=4, num_classes=2, image_size=16).train()
    with torch.no_grad():
        for name, b in model.named_buffers():
            if "running_mean" in name:
                b.normal_()
    x = torch.randn(6, 1, 16, 16)
    reference = copy.deepcopy(model).eval()(x)
    with bn_eval(model):
        out = call(model, parameters(model), functional_buffers(model, "running"), x)
    torch.testing.assert_close(out, reference)
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="bn must be one of"):
        functional_buffers(model, "frozen")


def _quadratic(params, x, y):
    return ((x @ params["w"] - y) ** 2).mean()


@pytest.mark.parametrize("engine", ["func", "autograd"])
def test_sgd_inner_loop_matches_hand_written_steps(engine):
    torch.manual_seed(0)
    w = torch.randn(3, requires_grad=True)
    x, y = torch.randn(8, 3), torch.randn(8)
    adapted, losses = inner_loop(_quadratic, {"w": w}, x, y, steps=3, optimizer=sgd(0.1), engine=engine)
    ref, ref_losses = w, []
    for _ in range(3):
        loss = ((x @ ref - y) ** 2).mean()
        (g,) = torch.autograd.grad(loss, ref, create_graph=True)
        ref, ref_losses = ref - 0.1 * g, ref_losses + [loss.detach()]
    torch.testing.assert_close(adapted["w"], ref)
    torch.testing.assert_close(losses, torch.stack(ref_losses))
    # second order: the adapted weights are differentiable functions of w
    v = torch.randn(3)
    (g1,) = torch.autograd.grad(adapted["w"] @ v, w)
    (g2,) = torch.autograd.grad(ref @ v, w)
    torch.testing.assert_close(g1, g2)
    # first order: the Jacobian of the adapted weights is the identity
    fo, _ = inner_loop(_quadratic, {"w": w}, x, y, steps=3, optimizer=sgd(0.1), first_order=True, engine=engine)
    torch.testing.assert_close(fo["w"], ref)
    (g3,) = torch.autograd.grad(fo["w"] @ v, w)
    torch.testing.assert_close(g3, v)


def test_sgd_accepts_per_parameter_rates():
    params = {"a": torch.ones(2), "b": torch.ones(3)}
    grads = {"a": torch.ones(2), "b": torch.ones(3)}
    lrs = {"a": torch.tensor([0.5, 1.0]), "b": torch.full((3,), 2.0)}
    new, _ = sgd(lrs).step(params, grads, ())
    torch.testing.assert_close(new["a"], torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(new["b"], torch.full((3,), -1.0))


def test_adam_matches_torch_optim_adam():
    torch.manual_seed(0)
    w0 = torch.randn(3)
    x, y = torch.randn(8, 3), torch.randn(8)
    adapted, _ = inner_loop(_quadratic, {"w": w0}, x, y, steps=4, optimizer=adam(0.05, betas=(0.9, 0.99)))
    w = w0.clone().requires_grad_()
    opt = torch.optim.Adam([w], lr=0.05, betas=(0.9, 0.99), eps=1e-8)
    for _ in range(4):
        opt.zero_grad()
        ((x @ w - y) ** 2).mean().backward()
        opt.step()
    torch.testing.assert_close(adapted["w"], w.detach())


def _two_tensor_loss(params, x, y):
    return ((torch.tanh(x @ params["w"]) @ params["b"] - y) ** 2).mean()


@pytest.mark.parametrize("per_parameter", [False, True])
def test_adam_on_several_tensors_matches_torch_optim_adam(per_parameter):
    """The flat moments keep every tensor's own slice: two shapes, one rate each or a rate per tensor."""
    torch.manual_seed(1)
    start = {"w": torch.randn(3, 4), "b": torch.randn(4)}
    x, y = torch.randn(8, 3), torch.randn(8)
    rates = {"w": 0.05, "b": 0.02} if per_parameter else {"w": 0.05, "b": 0.05}
    lr = {k: torch.tensor(r) for k, r in rates.items()} if per_parameter else 0.05
    adapted, _ = inner_loop(_two_tensor_loss, start, x, y, steps=5, optimizer=adam(lr, betas=(0.9, 0.99)))
    ref = {k: v.clone().requires_grad_() for k, v in start.items()}
    opt = torch.optim.Adam([{"params": [ref[k]], "lr": r} for k, r in rates.items()], betas=(0.9, 0.99))
    for _ in range(5):
        opt.zero_grad()
        _two_tensor_loss(ref, x, y).backward()
        opt.step()
    for k in start:
        torch.testing.assert_close(adapted[k], ref[k].detach())


def test_adam_inner_loop_is_differentiable_through_its_steps():
    """Second order through two Adam steps, against finite differences (float64)."""
    torch.manual_seed(2)
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)

    def adapted_loss(w):
        out, _ = inner_loop(_two_tensor_loss, {"w": w, "b": b}, x, y, steps=2, optimizer=adam(0.1, betas=(0.5, 0.9)))
        return _two_tensor_loss(out, x, y)

    assert torch.autograd.gradcheck(adapted_loss, torch.randn(3, 3, dtype=torch.float64, requires_grad=True))


def test_inner_loop_runs_under_no_grad():
    w = torch.randn(3)
    x, y = torch.randn(8, 3), torch.randn(8)
    with torch.no_grad():
        a, _ = inner_loop(_quadratic, {"w": w}, x, y, steps=2, optimizer=sgd(0.1), first_order=True, engine="func")
        b, _ = inner_loop(_quadratic, {"w": w}, x, y, steps=2, optimizer=sgd(0.1), first_order=True, engine="autograd")
    torch.testing.assert_close(a, b)
    assert not torch.equal(a["w"], w)
    with pytest.raises(ValueError, match="engine"):
        inner_loop(_quadratic, {"w": w}, x, y, steps=1, optimizer=sgd(0.1), engine="jax")


def test_zero_steps_return_the_start():
    w = torch.randn(3)
    adapted, losses = inner_loop(_quadratic, {"w": w}, torch.randn(2, 3), torch.randn(2), steps=0, optimizer=sgd(1.0))
    assert adapted["w"] is w and losses.numel() == 0


def test_loop_and_vmap_batch_the_same_way():
    torch.manual_seed(0)
    shared = {"w": torch.randn(3)}

    def task(state, x, y):
        return {"loss": _quadratic(state, x, y), "pred": x @ state["w"]}

    xs, ys = torch.randn(4, 5, 3), torch.randn(4, 5)
    a = loop_tasks(task, 1)(shared, xs, ys)
    b = vmap_tasks(task, 1)(shared, xs, ys)
    assert a["loss"].shape == (4,) and a["pred"].shape == (4, 5)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(TaskBatcher(task, 1, mode="auto")(shared, xs, ys), a)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_a_failing_compile_falls_back_to_eager_once(mode, monkeypatch, caplog):
    compiled = []

    def broken_compile(fn, **options):  # as Inductor without a working C++ compiler
        compiled.append(options)

        def call(*args):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error\n(details)")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    shared = {"w": torch.randn(3)}
    xs, ys = torch.randn(4, 5, 3), torch.randn(4, 5)
    batcher = TaskBatcher(lambda state, x, y: _quadratic(state, x, y), 1, mode=mode, compile={"dynamic": False})
    with caplog.at_level("WARNING"):
        out = batcher(shared, xs, ys)
    torch.testing.assert_close(out, loop_tasks(lambda state, x, y: _quadratic(state, x, y), 1)(shared, xs, ys))
    assert "compiled per-task function failed (RuntimeError: InductorError: CppCompileError" in caplog.text
    assert batcher.compile_options is None and compiled == [{"dynamic": False}]
    batcher(shared, xs, ys)
    assert len(compiled) == 1  # eager from then on: no second attempt, no second warning
    assert caplog.text.count("running eagerly") == 1


def test_resolve_mode():
    assert resolve_mode("auto", "cpu") == "loop"
    assert resolve_mode("auto", "cuda") == "vmap"
    assert resolve_mode("vmap", "cpu") == "vmap"
    with pytest.raises(ValueError, match="task_batching must be one of"):
        resolve_mode("threads", "cpu")
    with pytest.raises(ValueError, match="task_batching must be one of"):
        TaskBatcher(lambda: None, 0, mode="threads")


def test_decomposed_batch_norm_matches_the_fused_kernel():
    torch.manual_seed(0)
    x, w, b = torch.randn(6, 3, 4, 4), torch.randn(3), torch.randn(3)
    fused = F.batch_norm(x, None, None, w, b, training=True, eps=1e-3)
    torch.testing.assert_close(batch_norm_batch_stats(x, w, b, 1e-3), fused)
    mean, var = torch.randn(3), torch.rand(3) + 0.5
    with DecomposedBatchNorm():
        torch.testing.assert_close(F.batch_norm(x, None, None, w, b, training=True, eps=1e-3), fused)
        eval_mode = F.batch_norm(x, mean, var, w, b, training=False)  # running statistics: untouched
    torch.testing.assert_close(eval_mode, F.batch_norm(x, mean, var, w, b, training=False))


def test_decomposed_batch_norm_gives_exact_second_order_gradients_under_vmap():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 3))
    params, bufs = parameters(model), functional_buffers(model, "batch")
    xs, ys = torch.randn(3, 5, 2, 4, 4), torch.randint(0, 3, (3, 5))

    def task(p, x, y):
        def loss(f):
            return F.cross_entropy(call(model, f, bufs, x), y)

        g = torch.func.grad(loss)(p)
        return loss({k: p[k] - 0.4 * g[k] for k in p})

    def meta_grads(batched):
        return torch.autograd.grad(batched(task, 1)(params, xs, ys).sum(), list(params.values()))

    expected = meta_grads(loop_tasks)
    with DecomposedBatchNorm():
        for got, want in zip(meta_grads(vmap_tasks), expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
