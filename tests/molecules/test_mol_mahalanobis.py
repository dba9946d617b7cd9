import torch

from fewshot.data.episode import Episode
from fewshot.molecules.mahalanobis import MahalanobisProtoNet, mahalanobis_logits


def reference(z_s, y_s, z_q, ridge):
    """One task, written out with explicit means, covariances and inverses (float64)."""

    def cov(x):
        if len(x) < 2:
            return torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype)
        c = x - x.mean(0)
        return c.T @ c / (len(x) - 1)

    out = torch.empty(len(z_q), 2, dtype=z_s.dtype)
    for c in (0, 1):
        x = z_s[y_s == c]
        lam = len(x) / (len(x) + 1)
        sigma = lam * cov(x) + (1 - lam) * cov(z_s) + ridge * torch.eye(z_s.shape[1], dtype=z_s.dtype)
        precision = torch.linalg.inv(sigma)
        for q in range(len(z_q)):
            d = z_q[q] - x.mean(0)
            out[q, c] = -0.5 * d @ precision @ d
    return out


def test_logits_match_the_written_out_formula():
    g = torch.Generator().manual_seed(0)
    z_s, z_q = (
        torch.randn(2, 7, 4, generator=g, dtype=torch.float64),
        torch.randn(2, 5, 4, generator=g, dtype=torch.float64),
    )
    y_s = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]])  # the second task has one inactive
    logits = mahalanobis_logits(z_s, y_s, z_q, ridge=0.1)
    for b in range(2):
        assert torch.allclose(logits[b], reference(z_s[b], y_s[b], z_q[b], 0.1), atol=1e-10)


def test_trains_and_adapts():
    torch.manual_seed(0)
    learner = MahalanobisProtoNet(torch.nn.Linear(6, 3))
    x = torch.randn(2, 8, 6)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]).expand(2, -1)
    loss, metrics = learner.meta_loss(Episode(x, y, x + 0.1, y))
    loss.backward()
    assert torch.isfinite(loss) and learner.encoder.weight.grad is not None and 0 <= metrics["accuracy"] <= 1
    assert learner.adapt(x[0], y[0])(x[1]).shape == (8, 2)
