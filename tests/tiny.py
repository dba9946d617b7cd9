"""A tiny prototype learner and clustered data for engine tests (no dependence on real algorithms)."""

import torch
from torch import nn

from fewshot.algorithms.base import Algorithm
from fewshot.data import FewShotDataset
from fewshot.engine import TrainConfig, Trainer


def clustered(classes=12, per_class=10, dim=8, noise=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 2
    labels = torch.arange(classes).repeat_interleave(per_class)
    return FewShotDataset(centers[labels] + noise * torch.randn(len(labels), dim, generator=g), labels)


class TinyProto(Algorithm):
    """Linear encoder + nearest prototype, with a BatchNorm to exercise buffers."""

    def __init__(self, dim=8, width=16):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))

    def _logits(self, sx, sy, qx):
        ways = int(sy.max()) + 1
        z = self.encoder(torch.cat([sx, qx]))
        zs, zq = z[: len(sx)], z[len(sx) :]
        protos = torch.stack([zs[sy == c].mean(0) for c in range(ways)])
        return -(torch.cdist(zq, protos) ** 2)

    def meta_loss(self, episode):
        losses, accs = [], []
        for t in episode.tasks():
            logits = self._logits(t.support_x[0], t.support_y[0], t.query_x[0])
            losses.append(nn.functional.cross_entropy(logits, t.query_y[0]))
            accs.append((logits.argmax(1) == t.query_y[0]).float().mean())
        loss = torch.stack(losses).mean()
        return loss, {"loss": float(loss.detach()), "accuracy": float(torch.stack(accs).mean())}

    def adapt(self, support_x, support_y):
        return lambda query_x: self._logits(support_x, support_y, query_x)


def config(tmp_path, **changes) -> TrainConfig:
    """A short run of the tiny learner on clustered arrays, validated and tested."""
    base = dict(
        dataset="arrays",
        ways=3,
        shots=2,
        queries=3,
        meta_batch=2,
        steps=12,
        lr=0.01,
        val_every=4,
        val_episodes=20,
        test_episodes=30,
        out=str(tmp_path / "run"),
        quiet=True,
        tensorboard=False,
        log_every=2,
        schedule="cosine",
        warmup=2,
    )
    return TrainConfig(**{**base, **changes})


def trainer(cfg, resume=False, validate=True) -> Trainer:
    torch.manual_seed(0)
    val = clustered(seed=1) if validate else None
    return Trainer(cfg, TinyProto(), clustered(), val, clustered(seed=2), resume=resume)
