import pytest
import torch

from fewshot.molecules.adkf import DeepKernelGP, marginal_log_likelihood, predict, rbf
from fewshot.molecules.evaluate import evaluate_protocol
from fewshot.molecules.protocols import moleculenet_episodes
from fewshot.molecules.train import meta_train
from fewshot.nn import MLP


def test_gp_math_matches_dense_formulas():
    g = torch.Generator().manual_seed(0)
    z_s, z_q = torch.randn(2, 6, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, 3, generator=g).double()
    y = torch.tensor([[1.0, -1, 1, -1, 1, 1], [-1.0, -1, 1, 1, 1, -1]]).double()
    log_hyper = torch.tensor([[0.3, -0.2, -1.0], [-0.5, 0.4, -2.0]]).double()
    mll = marginal_log_likelihood(z_s, y, log_hyper)
    mean, var = predict(z_s, y, z_q, log_hyper)
    for b in range(2):
        ls, s2, noise = log_hyper[b].exp()
        k = lambda a, c, s2=s2, ls=ls: s2 * torch.exp(-(torch.cdist(a, c) ** 2) / (2 * ls**2))  # noqa: E731
        cov = k(z_s[b], z_s[b]) + (noise + 1e-4) * torch.eye(6, dtype=torch.float64)
        ref = torch.distributions.MultivariateNormal(torch.zeros(6, dtype=torch.float64), cov).log_prob(y[b])
        assert mll[b] == pytest.approx(float(ref), abs=1e-8)
        inv = torch.linalg.inv(cov)
        kq = k(z_s[b], z_q[b])
        assert torch.allclose(mean[b], kq.T @ inv @ y[b], atol=1e-8)
        assert torch.allclose(var[b], s2 - (kq.T @ inv @ kq).diagonal(), atol=1e-8)
    assert rbf(z_s, z_s, log_hyper).diagonal(dim1=1, dim2=2).allclose(log_hyper[:, 1:2].exp().expand(2, 6))


def test_hyperparameter_fit_raises_the_support_likelihood():
    g = torch.Generator().manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(1, 16, 4, generator=g), dim=-1)
    y = torch.sign(z[..., 0])
    learner = DeepKernelGP(torch.nn.Identity(), inner_steps=40)
    fitted = learner.fit_hyper(z, y)
    assert marginal_log_likelihood(z, y, fitted) > marginal_log_likelihood(z, y, learner.init_log_hyper[None])


def test_deep_kernel_gp_trains_and_ranks(tmp_path):
    from fewshot.molecules.assays import load_assays

    actives = ["CCO", "CCCO", "CCCCO", "OCC(O)CO", "CC(=O)O", "CCC(=O)O", "OC1CCCCC1", "Oc1ccccc1"]
    inactives = ["CC", "CCC", "CCCC", "CCCCC", "C1CCCCC1", "c1ccccc1", "CC(C)C", "C=CC"]
    lines = ["smiles,A"] + [f"{s},1" for s in actives] + [f"{s},0" for s in inactives]
    (tmp_path / "s.csv").write_text("\n".join(lines))
    family = load_assays(tmp_path / "s.csv", "train", train_tasks=1, cache=False)
    torch.manual_seed(0)
    learner = DeepKernelGP(MLP(in_features=2048, hidden=(32,)), inner_steps=10)
    history = meta_train(learner, family, steps=10, shots=3, queries=3, batch_size=2, log_every=5)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in history)
    result = evaluate_protocol(learner, moleculenet_episodes(family, shots=(3,), draws=3))
    assert result[3].summary("roc_auc")["mean"] > 0.7
    with pytest.raises(ValueError, match="both actives"):
        learner.adapt(torch.zeros(2, 2048), torch.zeros(2, dtype=torch.long))
