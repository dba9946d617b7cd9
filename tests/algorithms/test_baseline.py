"""FineTune (Baseline / Baseline++) against closed forms (tiny models, CPU, fast)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fewshot.algorithms.baseline import FineTune, make_head
from fewshot.data import Episode
from fewshot.nn import MLP, Conv4, CosineLinear


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def separable_task(ways=5, shots=3, dim=12, seed=0):
    """Support points around orthogonal class directions: linearly separable."""
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.eye(dim)[:ways]
    y = torch.arange(ways).repeat_interleave(shots)
    return centers[y] + 0.3 * torch.randn(len(y), dim, generator=g), y


def image_episode(b=2, ways=3, k=2, q=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Episode(
        torch.rand(b, ways * k, 1, size, size, generator=g), torch.arange(ways).repeat_interleave(k).repeat(b, 1),
        torch.rand(b, ways * q, 1, size, size, generator=g), torch.arange(ways).repeat_interleave(q).repeat(b, 1),
    )  # fmt: skip


def conv_model(head="linear", **kw):
    torch.manual_seed(0)
    return FineTune(Conv4(hidden=8, image_size=16), num_classes=7, head=head, finetune_steps=20, **kw)


@pytest.mark.parametrize("head", ["linear", "cosine"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_adapt_never_changes_the_model(head, mode):
    model = conv_model(head).train(mode == "train")
    ep = image_episode()
    before = snapshot(model)
    predict = model.adapt(ep.support_x[0], ep.support_y[0])
    logits = predict(ep.query_x[0])
    assert logits.shape == (6, 3) and not logits.requires_grad
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert model.training == (mode == "train")


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_head_fits_separable_support_embeddings(head):
    x, y = separable_task()
    model = FineTune(nn.Flatten(), num_classes=4, head=head, feature_dim=12)
    predict = model.adapt(x, y)
    assert (predict(x).argmax(1) == y).all()
    assert isinstance(predict.head, nn.Linear if head == "linear" else CosineLinear)
    assert predict.head.weight.shape == (5, 12)


def test_adapt_is_deterministic_and_works_in_inference_mode():
    model = conv_model("cosine").eval()
    ep = image_episode()
    first = model.adapt(ep.support_x[1], ep.support_y[1])(ep.query_x[1])
    with torch.inference_mode():
        second = model.adapt(ep.support_x[1], ep.support_y[1])(ep.query_x[1])
    torch.testing.assert_close(first, second)


def test_cosine_head_logits_closed_form():
    x, y = separable_task(ways=3, shots=2, dim=5)
    model = FineTune(MLP(5, hidden=(8,)), num_classes=4, head="cosine", scale=4.0)
    predict = model.adapt(x, y)
    z = model.encoder(x).detach()
    w = predict.head.weight
    expected = torch.stack([torch.stack([4.0 * (zi @ wc) / (zi.norm() * wc.norm()) for wc in w]) for zi in z])
    torch.testing.assert_close(predict(x), expected)
    # the pre-training classifier is the same cosine form over all training classes
    loss, metrics = model.supervised_loss(x, y)
    cw = model.classifier.weight
    global_logits = 4.0 * F.normalize(z, dim=1) @ F.normalize(cw, dim=1).T
    torch.testing.assert_close(loss, F.cross_entropy(global_logits, y))
    assert metrics["accuracy"] == pytest.approx(float((global_logits.argmax(1) == y).float().mean()))


def test_supervised_loss_trains_encoder_and_classifier():
    model = FineTune(MLP(5, hidden=(8,)), num_classes=4)
    x, y = torch.randn(10, 5), torch.randint(0, 4, (10,))
    loss, _ = model.supervised_loss(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(model.classifier(model.encoder(x)), y))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_meta_loss_is_the_ridge_head_in_closed_form(head):
    """Primal ridge solution W = (Zs^T Zs + lam I)^-1 Zs^T Y, per task (the code uses the dual form)."""
    torch.manual_seed(0)
    model = FineTune(MLP(5, hidden=(8,)), num_classes=4, head=head, ridge=0.5, scale=3.0).double()
    g = torch.Generator().manual_seed(1)
    ep = Episode(
        torch.randn(2, 5, 5, generator=g, dtype=torch.float64), torch.tensor([[0, 0, 1, 2, 2]] * 2),
        torch.randn(2, 6, 5, generator=g, dtype=torch.float64), torch.tensor([[0, 0, 1, 1, 2, 2]] * 2),
    )  # fmt: skip
    losses = []
    for t in range(2):
        zs, zq = model.encoder(ep.support_x[t]), model.encoder(ep.query_x[t])
        if head == "cosine":
            zs, zq = zs / zs.norm(dim=1, keepdim=True), zq / zq.norm(dim=1, keepdim=True)
        targets = torch.eye(3, dtype=torch.float64)[ep.support_y[t]]
        w = torch.linalg.inv(zs.T @ zs + 0.5 * torch.eye(8, dtype=torch.float64)) @ zs.T @ targets
        losses.append(F.cross_entropy(3.0 * zq @ w, ep.query_y[t]))
    loss, metrics = model.meta_loss(ep)
    torch.testing.assert_close(loss, torch.stack(losses).mean())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.classifier.weight.grad is None  # task-local labels never reach the global classifier


def test_errors():
    with pytest.raises(ValueError, match="unknown head 'svm'"):
        FineTune(Conv4(hidden=8), 5, head="svm")
    with pytest.raises(ValueError, match="feature_dim"):
        FineTune(nn.Flatten(), 5)
    with pytest.raises(ValueError, match="unknown head"):
        make_head("svm", 3, 2)
