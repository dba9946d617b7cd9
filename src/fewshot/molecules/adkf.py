"""A deep-kernel Gaussian process in the spirit of ADKF-IFT (Chen et al., ICLR 2023).

Per task, the GP's hyperparameters (RBF lengthscale, signal and noise variance) are fitted to
the support set by maximising its marginal likelihood on the learned features; the feature
extractor is meta-learned through the query set's predictive log-likelihood. Here the
hyperparameters are treated as constants in the outer gradient (the first-order variant; the
paper adds the implicit-function-theorem correction). Labels are regressed as -1 / +1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor
from fewshot.data.episode import Episode
from fewshot.molecules.tasks import check_support

JITTER = 1e-4


def rbf(a: Tensor, b: Tensor, log_hyper: Tensor) -> Tensor:
    """k(a, b) = s^2 exp(-|a - b|^2 / (2 l^2)); a [B, N, D], b [B, M, D], log_hyper [B, 3] -> [B, N, M]."""
    lengthscale, signal = log_hyper[:, 0].exp(), log_hyper[:, 1].exp()
    d2 = torch.cdist(a, b).pow(2)
    return signal[:, None, None] * torch.exp(-d2 / (2 * lengthscale[:, None, None] ** 2))


def _chol(z: Tensor, log_hyper: Tensor) -> Tensor:
    k = rbf(z, z, log_hyper)  # [B, S, S]
    noise = log_hyper[:, 2].exp() + JITTER
    eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return torch.linalg.cholesky(k + noise[:, None, None] * eye)  # [B, S, S]


def marginal_log_likelihood(z: Tensor, y: Tensor, log_hyper: Tensor) -> Tensor:
    """log p(y | z, hyper) per task: z [B, S, D], y [B, S] in {-1, 1} -> [B]."""
    chol = _chol(z, log_hyper)
    alpha = torch.cholesky_solve(y[..., None], chol)  # [B, S, 1]
    fit = -0.5 * (y[..., None] * alpha).sum((1, 2))
    return fit - chol.diagonal(dim1=1, dim2=2).log().sum(1) - 0.5 * y.shape[1] * math.log(2 * math.pi)


def predict(z_s: Tensor, y_s: Tensor, z_q: Tensor, log_hyper: Tensor) -> tuple[Tensor, Tensor]:
    """GP posterior mean and variance of the latent at z_q [B, Q, D] -> [B, Q], [B, Q]."""
    chol = _chol(z_s, log_hyper)
    k_sq = rbf(z_s, z_q, log_hyper)  # [B, S, Q]
    mean = (k_sq * torch.cholesky_solve(y_s[..., None], chol)).sum(1)  # [B, Q]
    v = torch.linalg.solve_triangular(chol, k_sq, upper=False)  # [B, S, Q]
    var = (log_hyper[:, 1].exp()[:, None] - v.pow(2).sum(1)).clamp(min=1e-6)  # [B, Q]
    return mean, var


class DeepKernelGP(Algorithm):
    """GP classifier-by-regression on ``encoder`` features, hyperparameters fitted per task.

    ``inner_steps`` Adam steps (rate ``inner_lr``) on the support's marginal likelihood,
    from the initial log-hyperparameters (lengthscale, signal, noise). Features are
    L2-normalised, so the initial lengthscale is on the unit sphere's scale.
    """

    channels_last = False
    init_log_hyper: Tensor  # [3] buffer

    def __init__(
        self,
        encoder: nn.Module,
        inner_steps: int = 50,
        inner_lr: float = 0.05,
        init: tuple[float, float, float] = (1.0, 1.0, 0.1),
    ):
        super().__init__()
        self.encoder, self.inner_steps, self.inner_lr = encoder, inner_steps, inner_lr
        self.register_buffer("init_log_hyper", torch.tensor(init).log())

    def features(self, x: Tensor) -> Tensor:
        return F.normalize(self.encoder(x.flatten(0, 1)), dim=-1).view(*x.shape[:2], -1)  # [B, M, D]

    def fit_hyper(self, z_s: Tensor, y_s: Tensor) -> Tensor:
        """Log-hyperparameters [B, 3] maximising each task's support marginal likelihood (z detached)."""
        z, y = z_s.detach(), y_s.detach()
        log_hyper = self.init_log_hyper.expand(z.shape[0], 3).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([log_hyper], lr=self.inner_lr)
        with torch.enable_grad():
            for _ in range(self.inner_steps):
                loss = -marginal_log_likelihood(z, y, log_hyper.clamp(-6, 4)).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return log_hyper.detach().clamp(-6, 4)

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        z_s, z_q = self.features(episode.support_x), self.features(episode.query_x)
        y_s, y_q = 2.0 * episode.support_y - 1, 2.0 * episode.query_y - 1  # [B, S], [B, Q]
        log_hyper = self.fit_hyper(z_s, y_s)
        mean, var = predict(z_s, y_s, z_q, log_hyper)
        var = var + log_hyper[:, 2].exp()[:, None]  # predictive variance of the noisy label
        nll = 0.5 * ((y_q - mean) ** 2 / var + var.log() + math.log(2 * math.pi))
        loss = nll.mean()
        accuracy = ((mean > 0).long() == episode.query_y).float().mean()
        return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        check_support(support_y)
        with torch.no_grad():
            z_s = self.features(support_x[None])  # [1, S, D]
            y_s = 2.0 * support_y[None].float() - 1
        log_hyper = self.fit_hyper(z_s, y_s)

        def predictor(query_x: Tensor) -> Tensor:
            with torch.no_grad():
                mean, _ = predict(z_s, y_s, self.features(query_x[None]), log_hyper)  # [1, Q]
            return torch.stack([-mean[0], mean[0]], dim=-1) / 2  # [Q, 2]: logit difference = mean

        return predictor
