"""ANIL, Meta-SGD and Reptile against hand-written references; every gradient method on
both task-batching paths and through ``adapt``."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot.algorithms.gradient import ANIL, FOMAML, MAML, MetaSGD, Reptile
from fewshot.algorithms.gradient.reptile import shot_major
from fewshot.data import Episode
from fewshot.functional import inner_loop
from fewshot.nn import MLP, Conv4
from fewshot.optim import sgd


def tiny_mlp(seed=0) -> MLP:
    torch.manual_seed(seed)
    return MLP(4, (6,), num_classes=3)


def episode(b=2, n=3, k=2, q=3, dim=(4,), seed=1) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(
        torch.randn(b, n * k, *dim, generator=g),
        torch.arange(n).repeat_interleave(k).repeat(b, 1),
        torch.randn(b, n * q, *dim, generator=g),
        torch.arange(n).repeat_interleave(q).repeat(b, 1),
    )


def body(w, x):
    return torch.relu(x @ w[0].T + w[1])


def head(w, z):
    return z @ w[2].T + w[3]


def mlp_forward(w, x):
    """The tiny MLP written out by hand: w = [W1, b1, W2, b2]."""
    return head(w, body(w, x))


# -- ANIL ------------------------------------------------------------------------------


def reference_anil(w, ep, lr, steps):
    """Only W2, b2 move in the inner loop; second order through them."""
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast = list(w[2:])
        for _ in range(steps):
            grads = torch.autograd.grad(
                F.cross_entropy(head([*w[:2], *fast], body(w, sx)), sy), fast, create_graph=True
            )
            fast = [p - lr * g for p, g in zip(fast, grads)]
        losses.append(F.cross_entropy(mlp_forward([*w[:2], *fast], qx), qy))
    return torch.stack(losses).mean()


class Plain(nn.Module):
    """Not a fewshot backbone: ANIL runs the whole forward at every inner step."""

    def __init__(self, mlp: MLP):
        super().__init__()
        self.body, self.classifier = mlp.features, mlp.head

    def forward(self, x):
        return self.classifier(self.body(x))


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_anil_matches_hand_written_head_only_inner_loop(split, mode):
    model, ep = tiny_mlp(), episode()
    if split:
        alg = ANIL(model, inner_lr=0.3, inner_steps=2, task_batching=mode)
    else:
        model = Plain(model)
        alg = ANIL(model, inner_lr=0.3, inner_steps=2, head=model.classifier, task_batching=mode)
    assert alg.split_forward == split
    loss, _ = alg.meta_loss(ep)
    w = list(model.parameters())
    grads = torch.autograd.grad(loss, w)
    ref = reference_anil(w, ep, 0.3, 2)
    torch.testing.assert_close(loss, ref)
    for g, r in zip(grads, torch.autograd.grad(ref, w)):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)
    assert all(float(g.abs().sum()) > 0 for g in grads[:2])  # the body gets outer gradients


def test_anil_inner_loop_changes_only_the_head():
    model, ep = tiny_mlp(), episode(b=1)
    alg = ANIL(model, inner_lr=0.3, inner_steps=3)
    adapted = alg.adapted_params(ep.support_x[0], ep.support_y[0])
    for name, p in model.named_parameters():
        if name.startswith("head."):
            assert not torch.equal(adapted[name], p)
        else:
            assert torch.equal(adapted[name], p)
    maml = MAML(model, inner_lr=0.3, inner_steps=3).adapted_params(ep.support_x[0], ep.support_y[0])
    assert not torch.equal(maml["features.1.weight"], model.features[1].weight)


def test_anil_rejects_unknown_heads():
    with pytest.raises(ValueError, match="no parameters under"):
        ANIL(tiny_mlp(), head="classifier")
    with pytest.raises(ValueError, match="submodule"):
        ANIL(tiny_mlp(), head=nn.Linear(2, 2))


# -- Meta-SGD --------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_metasgd_learning_rates_get_hand_written_gradients(steps, mode):
    model, ep = tiny_mlp(), episode()
    alg = MetaSGD(model, inner_lr=0.3, inner_steps=steps, task_batching=mode)
    with torch.no_grad():  # make the rates differ per element
        for lr in alg.lrs.values():
            lr.uniform_(0.1, 0.5)
    w = list(model.parameters())
    alphas = [alg.learning_rates()[k] for k, _ in model.named_parameters()]
    assert len(list(alg.parameters())) == 2 * len(w)
    loss, _ = alg.meta_loss(ep)
    grads = torch.autograd.grad(loss, w + alphas)
    losses = []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        fast = list(w)
        for _ in range(steps):
            g = torch.autograd.grad(F.cross_entropy(mlp_forward(fast, sx), sy), fast, create_graph=True)
            fast = [p - a * gi for p, a, gi in zip(fast, alphas, g)]
        losses.append(F.cross_entropy(mlp_forward(fast, qx), qy))
    ref = torch.stack(losses).mean()
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, torch.autograd.grad(ref, w + alphas)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert all(float(g.abs().sum()) > 0 for g in grads[len(w) :])


def test_metasgd_rates_start_at_inner_lr_and_train():
    model, ep = tiny_mlp(), episode()
    alg = MetaSGD(model, inner_lr=0.25)
    assert set(alg.lrs) == {"features__1__weight", "features__1__bias", "head__weight", "head__bias"}
    assert all(torch.all(lr == 0.25) for lr in alg.lrs.values())
    opt = torch.optim.SGD(alg.parameters(), lr=0.1)
    alg.meta_loss(ep)[0].backward()
    opt.step()
    assert any(not torch.all(lr == 0.25) for lr in alg.lrs.values())


def test_metasgd_has_no_rates_for_what_the_inner_loop_leaves_alone():
    alg = MetaSGD(Conv4(hidden=4, num_classes=3, image_size=16), adapt_norm=False)
    convs = {f"features__{i}__0__{p}" for i in range(4) for p in ("weight", "bias")}  # BatchNorm: features__i__1
    assert set(alg.lrs) == convs | {"head__weight", "head__bias"}


# -- Reptile ---------------------------------------------------------------------------


def shot_major_by_hand(y):
    """Indices: the first example of each class (in order of appearance), then the second, ..."""
    per_class = {}
    for i, label in enumerate(y.tolist()):
        per_class.setdefault(label, []).append(i)
    rounds = max(len(v) for v in per_class.values())
    return [v[r] for r in range(rounds) for v in per_class.values() if r < len(v)]


def reptile_reference(model, ep, inner_lr, steps, eps, optimizer="sgd", data="support", batch=None, adam=None):
    """theta + eps * mean(theta' - theta), theta' from torch.optim on a copy per task.
    ``adam``: a torch Adam state_dict every task's inner Adam starts from; the tasks'
    final state_dicts are then returned too."""
    theta = [p.detach().clone() for p in model.parameters()]
    finals, states = [], []
    for sx, sy, qx, qy in zip(ep.support_x, ep.support_y, ep.query_x, ep.query_y):
        x, y = (torch.cat([sx, qx]), torch.cat([sy, qy])) if data == "support+query" else (sx, sy)
        if batch is not None:
            order = shot_major_by_hand(y)
            x, y = x[order], y[order]
            cycle = [i % len(y) for i in range(steps * batch)]
        w = [t.clone().requires_grad_() for t in theta]
        opt = (
            torch.optim.SGD(w, lr=inner_lr)
            if optimizer == "sgd"
            else torch.optim.Adam(w, lr=inner_lr, betas=(0.0, 0.999), eps=1e-8)
        )
        if adam is not None:
            opt.load_state_dict(copy.deepcopy(adam))  # the moments are updated in place
        for step in range(steps):
            rows = slice(None) if batch is None else cycle[step * batch : (step + 1) * batch]
            opt.zero_grad()
            F.cross_entropy(mlp_forward(w, x[rows]), y[rows]).backward()
            opt.step()
        finals.append([p.detach() for p in w])
        states.append(opt.state_dict())
    theta = [t + eps * torch.stack([f[i] - t for f in finals]).mean(0) for i, t in enumerate(theta)]
    return theta if adam is None else (theta, states)


@pytest.mark.parametrize(
    "optimizer,data,batch",
    [("sgd", "support", None), ("adam", "support", None), ("sgd", "support+query", None), ("adam", "support", 4)],
)
@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_reptile_step_is_the_reptile_formula(optimizer, data, batch, mode):
    model, ep = tiny_mlp(), episode(b=3)
    lr = 0.3 if optimizer == "sgd" else 0.05
    expected = reptile_reference(model, ep, lr, 4, eps=0.7, optimizer=optimizer, data=data, batch=batch)
    alg = Reptile(
        model,
        inner_lr=lr,
        inner_steps=4,
        inner_optimizer=optimizer,
        inner_data=data,
        inner_batch=batch,
        task_batching=mode,
    )
    opt = torch.optim.SGD(alg.parameters(), lr=0.7)
    loss, metrics = alg.meta_loss(ep)
    loss.backward()
    opt.step()
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
    assert metrics["surrogate"] == pytest.approx(loss.item())
    assert {"loss", "accuracy", "support_loss_before", "support_loss_after"} <= set(metrics)
    assert metrics["support_loss_after"] < metrics["support_loss_before"]


def mean_adam_state(states, template):
    """``template`` (a torch Adam state_dict) with every moment the mean over ``states``."""
    out = copy.deepcopy(template)
    for i, slot in out["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            slot[key] = torch.stack([s["state"][i][key] for s in states]).mean(0)
        slot["step"] = states[0]["state"][i]["step"].clone()
    return out


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_reptile_carry_adam_starts_each_task_from_the_mean_of_the_last_moments(mode):
    model = tiny_mlp()
    alg = Reptile(model, inner_lr=0.05, inner_steps=3, inner_optimizer="adam", carry_adam=True, task_batching=mode)
    opt = torch.optim.SGD(alg.parameters(), lr=0.7)
    reference = tiny_mlp()  # the same initial weights
    w = list(reference.parameters())
    carried = torch.optim.Adam(w, lr=0.05, betas=(0.0, 0.999)).state_dict()  # no moments yet: fresh Adam
    for seed in (1, 2, 3):
        ep = episode(b=3, seed=seed)
        expected, states = reptile_reference(reference, ep, 0.05, 3, eps=0.7, optimizer="adam", adam=carried)
        carried = mean_adam_state(states, states[0])
        with torch.no_grad():
            for p, e in zip(w, expected):
                p.copy_(e)
        loss, _ = alg.meta_loss(ep)
        loss.backward()
        opt.step()
        opt.zero_grad()
        for p, e in zip(model.parameters(), expected):
            torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
    assert alg.adam_step.item() == 9 == carried["state"][0]["step"].item()
    v = torch.cat([s["exp_avg_sq"].reshape(-1) for s in carried["state"].values()])
    torch.testing.assert_close(alg.adam_v, v)
    # adapt starts from the carried moments and leaves them as they were
    ep = episode(b=1, seed=4)
    before = alg.state_dict()
    adapted = alg.adapted_params(ep.support_x[0], ep.support_y[0], steps=5)
    for p, q in zip(adapted.values(), reference_adapted(reference, ep, carried, 5)):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)  # a fresh Adam lands 0.26 away
    assert all(torch.equal(before[k], v) for k, v in alg.state_dict().items())
    assert {"adam_step", "adam_m", "adam_v"} <= set(before)  # saved with the weights


def reference_adapted(model, ep, adam_state, steps):
    """The weights after ``steps`` full-batch Adam steps on the first task's support set."""
    w = [p.detach().clone().requires_grad_() for p in model.parameters()]
    opt = torch.optim.Adam(w, lr=0.05, betas=(0.0, 0.999))
    opt.load_state_dict(copy.deepcopy(adam_state))
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(mlp_forward(w, ep.support_x[0]), ep.support_y[0]).backward()
        opt.step()
    return [p.detach() for p in w]


def test_reptile_adapt_batch_steps_through_class_balanced_minibatches():
    model, ep = tiny_mlp(), episode(b=1, k=2)
    sx, sy = ep.support_x[0], ep.support_y[0]  # [6, 4], labels 0 0 1 1 2 2
    w = [p.detach().clone().requires_grad_() for p in model.parameters()]
    order = shot_major_by_hand(sy)  # 0 2 4 1 3 5: one example of every class, then the next
    cycle = [order[i % 6] for i in range(5 * 2)]
    for step in range(5):  # SGD by hand on rows (0, 2), (4, 1), (3, 5), (0, 2), (4, 1)
        rows = cycle[2 * step : 2 * step + 2]
        grads = torch.autograd.grad(F.cross_entropy(mlp_forward(w, sx[rows]), sy[rows]), w)
        w = [p - 0.3 * g for p, g in zip(w, grads)]
    batched = Reptile(model, inner_lr=0.3, adapt_steps=5, adapt_batch=2).adapted_params(sx, sy)
    for p, e in zip(batched.values(), w):
        torch.testing.assert_close(p, e.detach())
    full = Reptile(model, inner_lr=0.3, adapt_steps=5).adapted_params(sx, sy)
    assert not torch.allclose(full["features.1.weight"], batched["features.1.weight"])


def test_shot_major_order_interleaves_the_classes():
    y = torch.tensor([2, 2, 0, 1, 0, 2, 1, 1, 1])
    assert shot_major(y).tolist() == shot_major_by_hand(y) == [0, 2, 3, 1, 4, 6, 5, 7, 8]


def test_inner_batch_cycles_through_the_rows():
    seen = []

    def loss_fn(params, x):
        seen.append(x.tolist())
        return (params["w"] * x).sum()

    inner_loop(loss_fn, {"w": torch.zeros(())}, torch.arange(5.0), steps=3, optimizer=sgd(0.1), batch_size=2)
    assert seen == [[0, 1], [2, 3], [4, 0]]
    with pytest.raises(ValueError, match="batch_size"):
        inner_loop(loss_fn, {"w": torch.zeros(())}, torch.arange(5.0), steps=1, optimizer=sgd(0.1), batch_size=0)


def test_reptile_settings_are_checked():
    with pytest.raises(ValueError, match="inner_optimizer"):
        Reptile(tiny_mlp(), inner_optimizer="rmsprop")
    with pytest.raises(ValueError, match="inner_data"):
        Reptile(tiny_mlp(), inner_data="query")
    with pytest.raises(ValueError, match="first-order"):
        Reptile(tiny_mlp(), first_order=False)
    with pytest.raises(ValueError, match="inner_batch"):
        Reptile(tiny_mlp(), inner_batch=0)
    with pytest.raises(ValueError, match="adapt_batch"):
        Reptile(tiny_mlp(), adapt_batch=0)
    with pytest.raises(ValueError, match="zero_head does not apply"):
        Reptile(tiny_mlp(), zero_head=True)
    with pytest.raises(ValueError, match="adapt_norm=False does not apply"):
        Reptile(tiny_mlp(), adapt_norm=False)
    with pytest.raises(ValueError, match="carry_adam .* needs inner_optimizer='adam'"):
        Reptile(tiny_mlp(), carry_adam=True)


# -- every method: vmap == loop, adapt == inner loop -------------------------------------

ALGORITHMS = {
    "maml": lambda m, **s: MAML(m, inner_lr=0.4, inner_steps=2, **s),
    "fomaml": lambda m, **s: FOMAML(m, inner_lr=0.4, inner_steps=2, **s),
    "anil": lambda m, **s: ANIL(m, inner_lr=0.4, inner_steps=2, **s),
    "metasgd": lambda m, **s: MetaSGD(m, inner_lr=0.4, inner_steps=2, **s),
    "reptile": lambda m, **s: Reptile(m, inner_lr=0.1, inner_steps=3, **s),
}


def conv4_episode(b=3, seed=0):
    return episode(b=b, n=5, k=1, q=2, dim=(1, 16, 16), seed=seed)


def conv4(seed=0):
    torch.manual_seed(seed)
    return Conv4(hidden=8, num_classes=5, image_size=16)


@pytest.mark.parametrize("name", ["fomaml", "anil", "metasgd", "reptile"])
def test_vmap_and_loop_agree_with_batchnorm(name):
    model, ep = conv4(), conv4_episode()
    results = []
    for mode in ("loop", "vmap"):
        alg = ALGORITHMS[name](model, task_batching=mode)
        loss, metrics = alg.meta_loss(ep)
        results.append((loss, torch.autograd.grad(loss, list(alg.parameters())), metrics))
    (l1, g1, m1), (l2, g2, m2) = results
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert m1["accuracy"] == m2["accuracy"]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_adapt_predictor_equals_inner_loop_logits(name):
    model, ep = conv4(), conv4_episode()
    alg = ALGORITHMS[name](model, task_batching="loop")
    logits = alg.query_predictions(ep)  # [B, N*Q, N]
    before = [p.detach().clone() for p in alg.parameters()]
    alg.eval()
    with torch.no_grad():
        for i in range(ep.batch_size):
            out = alg.adapt(ep.support_x[i], ep.support_y[i])(ep.query_x[i])
            torch.testing.assert_close(out, logits[i].detach(), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(p, b) for p, b in zip(alg.parameters(), before))
