"""DARTS: genotypes, discrete network, supernet, second-order architecture gradient vs finite differences."""

import json

import pytest
import torch
import torch.nn.functional as F

from fewshot.nas import NASError
from fewshot.nas.darts import DartsNetwork, DartsSearch, Supernet, parse_genotype
from fewshot.nas.darts.genotype import to_json, to_string

GENOTYPE = (
    "normal=sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,sep_conv_3x3~1|dil_conv_3x3~1,max_pool_3x3~2;"
    "reduce=max_pool_3x3~0,max_pool_3x3~1|max_pool_3x3~1,skip_connect~2|avg_pool_3x3~0,dil_conv_5x5~3"
)


def _tiny(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    net = Supernet(in_channels=1, channels=2, layers=3, nodes=2, num_classes=3, alpha_init=0.5, seed=seed).to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    batch = lambda: (torch.randn(6, 1, 6, 6, generator=g, dtype=dtype), torch.randint(0, 3, (6,), generator=g))  # noqa: E731
    return net, batch(), batch()


def _ce(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def test_genotype_strings_json_and_network(tmp_path):
    g = parse_genotype(GENOTYPE)
    assert to_string(g) == GENOTYPE and g.nodes == 3
    assert parse_genotype(GENOTYPE.replace("max_pool_3x3~1,skip_connect~2", "skip_connect~2,max_pool_3x3~1")) == g
    assert parse_genotype(json.dumps(to_json(g))) == g
    net = DartsNetwork(GENOTYPE, in_channels=1, channels=4, layers=3)
    x = torch.randn(5, 1, 28, 28)
    assert net(x).shape == (5, net.out_features) == (5, 3 * 16)
    (tmp_path / "genotype.json").write_text(json.dumps({"genotype": to_json(g), "best": GENOTYPE}))  # as the CLI writes
    assert DartsNetwork(str(tmp_path / "genotype.json"), in_channels=1, channels=4, layers=3).genotype == g
    assert DartsNetwork(g, in_channels=3, channels=4, layers=4, num_classes=7)(torch.randn(2, 3, 13, 13)).shape == (
        2,
        7,
    )


@pytest.mark.parametrize(
    "bad, why",
    [
        ("normal=sep_conv_3x3~0,sep_conv_3x3~2;reduce=skip_connect~0,skip_connect~1", "inputs \\[0, 2\\]"),
        ("normal=conv_9x9~0,sep_conv_3x3~1;reduce=skip_connect~0,skip_connect~1", "'conv_9x9' is not an operation"),
        ("normal=none~0,sep_conv_3x3~1;reduce=skip_connect~0,skip_connect~1", "'none' is not an operation"),
        ("normal=sep_conv_3x3~0;reduce=skip_connect~0,skip_connect~1", "exactly 2 edges"),
        ("normal=sep_conv_3x3~0,sep_conv_3x3~1", "must read normal="),
        (
            "normal=sep_conv_3x3~0,sep_conv_3x3~1|skip_connect~0,skip_connect~2;reduce=skip_connect~0,skip_connect~1",
            "same number",
        ),
    ],
)
def test_bad_genotypes_are_named(bad, why):
    with pytest.raises(NASError, match=why):
        parse_genotype(bad)


def test_supernet_shapes_and_discretisation():
    net, (x, _), _ = _tiny(dtype=torch.float32)
    assert net(x).shape == (6, 3) and net.alpha_normal.shape == (2 + 3, 8)
    with torch.no_grad():
        net.alpha_normal.zero_()
        net.alpha_normal[:, 1] = 5.0  # skip_connect everywhere
        net.alpha_normal[0, 2] = 4.0  # node 0, input 0: sep_conv_3x3 second best
    g = net.genotype()
    assert [op for node in g.normal for op, _ in node] == ["skip_connect"] * 4
    capped = net.genotype(max_skip=1)
    assert sum(op == "skip_connect" for node in capped.normal for op, _ in node) == 1
    assert ("sep_conv_3x3", 0) in capped.normal[0]


def _unrolled_objective(search, train, val, alphas):
    """f(alpha) = L_val(w - xi (grad_w L_train(w, alpha) + wd w), alpha), evaluated directly."""
    with torch.no_grad():
        for a, v in zip(search.alphas, alphas):
            a.copy_(v)
    virtual = [v.detach() for v in search._virtual_weights(train, create_graph=False)]
    overrides = {search._names[id(w)]: v for w, v in zip(search.weights, virtual)}
    with torch.no_grad():
        return float(search._call(overrides, val))


def test_second_order_gradient_matches_finite_differences():
    net, train, val = _tiny()
    search = DartsSearch(net, net, _ce, order=2, w_lr=0.5, w_weight_decay=1e-3)
    analytic = torch.cat([g.flatten() for g in search.arch_gradient(train, val)])  # [2 * E * n_ops]
    base = [a.detach().clone() for a in search.alphas]
    flat = torch.cat([b.flatten() for b in base])
    numeric, h = torch.zeros_like(flat), 1e-5
    entries = torch.randperm(len(flat), generator=torch.Generator().manual_seed(0))[:10]  # both cells, several ops
    for i in entries.tolist():
        values = []
        for sign in (1, -1):
            shifted = flat.clone()
            shifted[i] += sign * h
            parts = torch.split(shifted, [b.numel() for b in base])
            values.append(_unrolled_objective(search, train, val, [p.view_as(b) for p, b in zip(parts, base)]))
        numeric[i] = (values[0] - values[1]) / (2 * h)
    assert analytic[entries].abs().max() > 1e-3  # the check is not vacuous
    torch.testing.assert_close(analytic[entries], numeric[entries], rtol=1e-5, atol=1e-8)
    # the unrolled term matters: the first-order gradient differs from it
    with torch.no_grad():
        for a, b in zip(search.alphas, base):
            a.copy_(b)
    first = torch.cat([g.flatten() for g in DartsSearch(net, net, _ce, order=1).arch_gradient(train, val)])
    assert (first - analytic).abs().max() > 1e-4


class SmoothMix(torch.nn.Module):
    """A smooth stand-in for a supernet (tanh experts mixed by softmax(alpha)): its Hessian is continuous, so the
    paper's finite-difference Hessian-vector product must agree with the exact one (ReLU networks have gradient
    jumps that make a finite difference of gradients at the paper's eps noisy on tiny batches)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.alpha = torch.nn.Parameter(torch.randn(2, 3, generator=g, dtype=torch.float64))
        self.w = torch.nn.Parameter(torch.randn(3, 4, 5, generator=g, dtype=torch.float64))
        self.head = torch.nn.Linear(5, 3, dtype=torch.float64)

    def arch_parameters(self):
        return [self.alpha]

    def forward(self, x):  # x: [B, 4]
        experts = torch.tanh(torch.einsum("bi,kio->bko", x, self.w))  # [B, 3, 5]
        mix = (F.softmax(self.alpha, -1).sum(0)[None, :, None] * experts).sum(1)  # [B, 5]
        return self.head(mix)


def test_paper_finite_difference_hessian_approximates_the_exact_gradient():
    torch.manual_seed(0)
    net = SmoothMix()
    train, val = [(torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))) for _ in range(2)]
    exact = DartsSearch(net, net, _ce, order=2, w_lr=0.5).arch_gradient(train, val)
    approx = DartsSearch(net, net, _ce, order=2, w_lr=0.5, hessian="finite_difference").arch_gradient(train, val)
    first = DartsSearch(net, net, _ce, order=1).arch_gradient(train, val)
    assert (exact[0] - first[0]).abs().max() > 1e-3
    torch.testing.assert_close(approx[0], exact[0], rtol=1e-4, atol=1e-6)


def test_search_steps_change_alphas_and_weights(tmp_path):
    net, train, val = _tiny(dtype=torch.float32)
    before_a, before_w = net.alpha_normal.detach().clone(), net.head.weight.detach().clone()
    search = DartsSearch(net, net, _ce, order=2, alpha_lr=0.1)
    result = search.run([train], [val], epochs=2, steps_per_epoch=1)
    assert len(result.epochs) == 2 and not torch.equal(before_a, net.alpha_normal)
    assert not torch.equal(before_w, net.head.weight)
    assert set(result.epochs[-1]["normal"]) == set(net.ops)
    from fewshot.nas.plots import plot_alphas

    plot_alphas(result.epochs, tmp_path / "alphas.png")  # architecture weights over epochs
    assert (tmp_path / "alphas.png").read_bytes()[:4] == b"\x89PNG"


def _collapse_case(seed, **mitigation):
    """Zela et al.'s S3-style space (skip vs 3x3 separable conv) in a 6-cell supernet: early in the search the
    skip connection, a gradient highway, takes over the normal cell."""
    torch.manual_seed(seed)
    net = Supernet(
        in_channels=1, channels=4, layers=6, nodes=2, num_classes=4, seed=seed, ops=("skip_connect", "sep_conv_3x3")
    )
    g = torch.Generator().manual_seed(seed)

    def batch():
        y = torch.randint(0, 4, (16,), generator=g)
        return torch.randn(16, 1, 8, 8, generator=g) + 0.3 * y[:, None, None, None].float(), y

    data = [batch() for _ in range(6)]
    search = DartsSearch(net, net, _ce, order=1, w_lr=0.05, alpha_lr=0.03, **mitigation)
    return search.run(data[:3], data[3:], epochs=3, steps_per_epoch=5)


def test_collapse_case_and_its_mitigations():
    for seed in (1,):
        plain = _collapse_case(seed)
        assert max(e["skips"] for e in plain.epochs) >= 3  # 3 of the 4 normal edges became skip connections
        darts_minus = _collapse_case(seed, aux_skip=1.0)
        assert darts_minus.epochs[-1]["normal"]["skip_connect"] < plain.epochs[-1]["normal"]["skip_connect"] - 0.05
        assert max(e["skips"] for e in darts_minus.epochs) <= 2
    stopped = _collapse_case(1, stop_skip=3)  # DARTS+: stop when the skips dominate, keep the genotype before
    assert stopped.stopped_early and len(stopped.epochs) < 3
    assert sum(op == "skip_connect" for node in stopped.genotype.normal for op, _ in node) < 3
