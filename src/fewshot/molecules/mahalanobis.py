"""ProtoNet with FS-Mol's Mahalanobis distance (Stanley et al. 2021, after Simple CNAPS, Bateni et al. 2020).

Per task and class c with n_c support embeddings, the class covariance is shrunk towards the
task's covariance: Sigma_c = l_c Cov_c + (1 - l_c) Cov_task + ridge I, l_c = n_c / (n_c + 1)
(covariances with 1 / (n - 1)); a query's logit for class c is -1/2 (z - mu_c)^T Sigma_c^-1 (z - mu_c).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor
from fewshot.data.episode import Episode
from fewshot.molecules.tasks import check_support


def _centered(z: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean [B, D], rows A [B, S, D] with A^T A the covariance (1 / (n - 1); 0 for n = 1), count n [B]
    of the rows of z [B, S, D] with weight 1 (the others are zero rows of A)."""
    n = weight.sum(1)  # [B]
    mean = (weight[..., None] * z).sum(1) / n.clamp(min=1)[:, None]  # [B, D]
    rows = (z - mean[:, None]) * weight[..., None] / (n - 1).clamp(min=1).sqrt()[:, None, None]  # [B, S, D]
    return mean, rows, n


def mahalanobis_logits(z_s: Tensor, y_s: Tensor, z_q: Tensor, ridge: float, classes: int = 2) -> Tensor:
    """Logits [B, Q, C] of queries z_q [B, Q, D] from support z_s [B, S, D], labels y_s [B, S].

    Sigma_c = ridge I + A^T A with A the 2S rows [sqrt(l_c) A_c; sqrt(1 - l_c) A_task]; by the
    Woodbury identity d^T Sigma_c^-1 d = (|d|^2 - (A d)^T (ridge I + A A^T)^-1 (A d)) / ridge,
    a 2S x 2S solve instead of a D x D one (exact; S is the support size).
    """
    _, task_rows, _ = _centered(z_s, torch.ones_like(y_s, dtype=z_s.dtype))
    eye = torch.eye(2 * z_s.shape[1], dtype=z_s.dtype, device=z_s.device)
    out = []
    for c in range(classes):
        mean, rows, n = _centered(z_s, (y_s == c).to(z_s.dtype))
        shrink = (n / (n + 1))[:, None, None]
        a = torch.cat([shrink.sqrt() * rows, (1 - shrink).sqrt() * task_rows], dim=1)  # [B, 2S, D]
        diff = (z_q - mean[:, None]).transpose(1, 2)  # [B, D, Q]
        ad = a @ diff  # [B, 2S, Q]
        inner = ridge * eye + a @ a.transpose(1, 2)  # [B, 2S, 2S], positive definite
        solved = torch.cholesky_solve(ad, torch.linalg.cholesky(inner))  # [B, 2S, Q]
        distance = (diff.pow(2).sum(1) - (ad * solved).sum(1)) / ridge  # [B, Q]
        out.append(-0.5 * distance)
    return torch.stack(out, dim=-1)


class MahalanobisProtoNet(Algorithm):
    """Prototypes with per-class Mahalanobis distances (module docstring); binary tasks."""

    channels_last = False

    def __init__(self, encoder: nn.Module, ridge: float = 0.1):
        super().__init__()
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        self.encoder, self.ridge = encoder, float(ridge)

    def embed(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(0, 1)).view(*x.shape[:2], -1)  # [B, M, D]

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        logits = mahalanobis_logits(
            self.embed(episode.support_x), episode.support_y, self.embed(episode.query_x), self.ridge
        )  # [B, Q, 2]
        loss = F.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten())
        accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
        return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        check_support(support_y)
        with torch.no_grad():
            z_s = self.embed(support_x[None])  # [1, S, D]

        def predictor(query_x: Tensor) -> Tensor:
            with torch.no_grad():
                return mahalanobis_logits(z_s, support_y[None], self.embed(query_x[None]), self.ridge)[0]  # [Q, 2]

        return predictor
