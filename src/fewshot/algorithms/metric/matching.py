"""Matching Networks (Vinyals et al., 2016), with optional full context embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, Predictor
from fewshot.algorithms.episode_math import (
    classification_metrics,
    embed_episode,
    frozen_forward,
    one_hot,
    task_ways,
)
from fewshot.data.episode import Episode

EPS = 1e-8  # probabilities are clamped to [EPS, 1] before the log


class FullContextEmbedding(nn.Module):
    """The full context embeddings of Vinyals et al. (2016), appendix A.2.

    Support: g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i), a bidirectional LSTM (hidden size D)
    over the support sequence with a skip connection.
    Query: an attention LSTM run for ``steps`` processing steps k = 1..K:
        r_{k-1} = sum_i softmax_i(h_{k-1} . g(x_i)) g(x_i)
        h^_k, c_k = LSTM(f'(x), [h_{k-1}, r_{k-1}], c_{k-1})
        h_k = h^_k + f'(x);        f(x, S) = h_K
    with h_0 = c_0 = 0. The LSTM's recurrent input [h, r] is realised as an
    ``LSTMCell(2D, D)`` fed [f'(x), r]: its gates W [f', r] + U h equal the paper's
    W f' + U' [h, r]. Queries are embedded independently of one another.
    """

    def __init__(self, dim: int, steps: int = 5) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.dim, self.steps = dim, steps
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(2 * dim, dim)

    def embed_support(self, g0: Tensor) -> Tensor:
        """[B, S, D] -> [B, S, D] (depends on the order of the support sequence)."""
        out, _ = self.support_lstm(g0)  # [B, S, 2D]
        return g0 + out[..., : self.dim] + out[..., self.dim :]

    def embed_query(self, f0: Tensor, g: Tensor) -> Tensor:
        """Queries [B, Q, D] attending to support embeddings g [B, S, D] -> [B, Q, D]."""
        b, q, d = f0.shape
        h = torch.zeros_like(f0)  # [B, Q, D]
        c = torch.zeros_like(f0).flatten(0, 1)  # [B*Q, D]
        for _ in range(self.steps):
            attention = torch.softmax(h @ g.transpose(1, 2), dim=-1)  # [B, Q, S]
            readout = attention @ g  # [B, Q, D]
            h_hat, c = self.query_cell(torch.cat([f0, readout], -1).flatten(0, 1), (h.flatten(0, 1), c))
            h = h_hat.view(b, q, d) + f0
        return h


class MatchingNet(Algorithm):
    """P(y | q, S) = sum_i a(q, x_i) onehot(y_i), with a = softmax over the support of
    ``scale`` * cosine(f(q), g(x_i)). The loss is the NLL of log(P) (P clamped to >= 1e-8);
    the "logits" returned by ``logits`` and by predictors are these log-probabilities.

    The paper's softmax has no temperature (``scale=1.0, learn_scale=False``), but with
    cosines in [-1, 1] the attention cannot be sharp: for 5-way 1-shot the best possible
    P(correct) is e / (e + 4/e) = 0.65, and on Omniglot training stalls near 85%. By
    default ``scale`` is a learned scalar initialised to 10 (as in ProtoNet's cosine).

    ``fce=True`` adds the full context embeddings (see ``FullContextEmbedding``) on
    top of the encoder's embeddings of width ``feature_dim`` (default
    ``encoder.out_features``), with ``steps`` processing steps.
    """

    def __init__(
        self,
        encoder: nn.Module,
        fce: bool = False,
        *,
        steps: int = 5,
        feature_dim: int | None = None,
        scale: float = 10.0,
        learn_scale: bool = True,
    ):
        super().__init__()
        self.encoder = encoder
        self.scale = nn.Parameter(torch.tensor(float(scale))) if learn_scale else float(scale)
        self.fce: FullContextEmbedding | None = None
        if fce:
            dim = feature_dim if feature_dim is not None else getattr(encoder, "out_features", None)
            if dim is None:
                raise ValueError("MatchingNet(fce=True) needs feature_dim when the encoder has no out_features")
            self.fce = FullContextEmbedding(dim, steps)

    def log_probs(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, ways: int) -> Tensor:
        """Log P(y | q, S) [B, Q, N] from embeddings [B, S, D], labels [B, S], queries [B, Q, D]."""
        if self.fce is not None:
            support_z = self.fce.embed_support(support_z)
            query_z = self.fce.embed_query(query_z, support_z)
        cosine = F.normalize(query_z, dim=-1) @ F.normalize(support_z, dim=-1).transpose(1, 2)  # [B, Q, S]
        probs = torch.softmax(self.scale * cosine, dim=-1) @ one_hot(support_y, ways, cosine.dtype)  # [B, Q, N]
        return probs.clamp(EPS, 1.0).log()

    def logits(self, episode: Episode) -> Tensor:
        """Log-probabilities [B, N*Q, N] of every task of ``episode``."""
        support_z, query_z = embed_episode(self.encoder, episode)
        return self.log_probs(support_z.flatten(2), episode.support_y, query_z.flatten(2), episode.ways)

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        log_p = self.logits(episode)  # [B, NQ, N]
        loss = F.nll_loss(log_p.flatten(0, 1), episode.query_y.flatten())
        return loss, classification_metrics(loss, log_p, episode.query_y)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        ways = task_ways(support_y)
        with torch.no_grad():
            support_z = frozen_forward(self.encoder, support_x).flatten(1)[None]  # [1, NK, D]

        def predict(query_x: Tensor) -> Tensor:
            with torch.no_grad():
                query_z = frozen_forward(self.encoder, query_x).flatten(1)[None]  # [1, Q, D]
                return self.log_probs(support_z, support_y[None], query_z, ways)[0]  # [Q, N]

        return predict
