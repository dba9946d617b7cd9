"""Baseline and Baseline++ of "A Closer Look at Few-shot Classification" (Chen et al., 2019).

Pre-train an encoder with a classifier over all training classes (``supervised_loss``
on global labels), then, for each new task, freeze the encoder and fit a fresh
linear (Baseline) or cosine (Baseline++) head on the support embeddings (``adapt``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.algorithms.base import Algorithm, backbone_for, checked_options
from fewshot.algorithms.episode_math import (
    classification_metrics,
    embed_episode,
    frozen_forward,
    one_hot,
    task_ways,
)
from fewshot.algorithms.spec import LearnerSpec
from fewshot.data.episode import Episode
from fewshot.nn.backbones import CosineLinear

HEADS = ("linear", "cosine")


def make_head(
    kind: str, in_features: int, out_features: int, scale: float = 10.0, generator: torch.Generator | None = None
) -> nn.Module:
    """A linear or cosine (``fewshot.nn.CosineLinear``) classifier; with ``generator`` its
    initial weights are drawn from it (linear: PyTorch's default U(-1/sqrt(D), 1/sqrt(D)))."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; valid: {', '.join(HEADS)}")
    head: nn.Linear | CosineLinear = (
        nn.Linear(in_features, out_features) if kind == "linear" else CosineLinear(in_features, out_features, scale)
    )
    if generator is not None:
        with torch.no_grad():
            if isinstance(head, nn.Linear):
                bound = in_features**-0.5
                for p in (head.weight, head.bias):
                    p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
            else:
                head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * in_features**-0.5)
    return head


def fit_head(
    head: nn.Module, z: Tensor, y: Tensor, steps: int, lr: float, momentum: float = 0.9, weight_decay: float = 1e-3
) -> nn.Module:
    """Train ``head`` in place on fixed features z [M, D] and labels y [M]: ``steps`` full-batch
    SGD steps on the cross-entropy. Works when called under ``no_grad`` or ``inference_mode``."""
    with torch.inference_mode(False), torch.enable_grad():
        z, y = z.detach().clone(), y.detach().clone()  # normal tensors even if made in inference mode
        optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(head(z), y).backward()
            optimizer.step()
    return head.requires_grad_(False)


@dataclass
class HeadPredictor:
    """Frozen ``encoder`` followed by a task's fitted ``head``: query_x [Q, ...] -> logits [Q, N]."""

    encoder: nn.Module
    head: nn.Module

    def __call__(self, query_x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.head(frozen_forward(self.encoder, query_x).flatten(1))


class FineTune(Algorithm):
    """Baseline (``head="linear"``) and Baseline++ (``head="cosine"``).

    Training, as in the paper: ``supervised_loss(x, y)`` on batches with *global* labels
    ``0..num_classes-1`` trains the encoder and ``classifier`` (a linear or
    ``CosineLinear`` head over all training classes).

    ``meta_loss(episode)`` exists so the episodic engine can train it too, but an
    episode's labels are task-local (0..N-1 means a different class in every task),
    so the global classifier cannot be used there. Instead it trains the encoder
    for the protocol ``adapt`` follows - fit a linear head on the support set, classify
    the queries - with the head fitted in closed form so gradients reach the encoder:
    ridge regression of one-hot targets on the support embeddings (L2-normalised for
    ``head="cosine"``), W = Zs^T (Zs Zs^T + ridge I)^-1 Y, query logits
    ``scale * Zq W``, cross-entropy (the R2-D2 head of Bertinetto et al., 2019, with a
    fixed scale). ``classifier`` gets no gradient from it.

    ``adapt`` freezes the encoder and fits a fresh head (weights drawn from a
    generator seeded with ``seed``, so it is deterministic) on the support embeddings:
    ``finetune_steps`` full-batch SGD steps (lr ``finetune_lr``, momentum 0.9, weight
    decay 1e-3; the paper uses mini-batches of 4 for 100 epochs).
    """

    @classmethod
    def from_spec(cls, spec: LearnerSpec) -> FineTune:
        """The spec's backbone as the encoder, pre-trained over the ``num_train_classes`` of the training split."""
        if spec.task != "classification":
            raise ValueError("finetune is a classification method; use a gradient-based method for regression")
        options = checked_options(cls, spec, "encoder", "num_classes")
        return cls(backbone_for(spec), num_classes=spec.num_train_classes, **options)

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        head: str = "linear",
        finetune_steps: int = 100,
        finetune_lr: float = 0.01,
        *,
        scale: float = 10.0,
        ridge: float = 1.0,
        seed: int = 0,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        dim = feature_dim if feature_dim is not None else getattr(encoder, "out_features", None)
        if dim is None:
            raise ValueError("FineTune needs feature_dim when the encoder has no out_features")
        self.encoder = encoder
        self.head_kind = head
        self.classifier = make_head(head, dim, num_classes, scale)
        self.feature_dim, self.num_classes = dim, num_classes
        self.finetune_steps, self.finetune_lr = finetune_steps, finetune_lr
        self.scale, self.ridge, self.seed = scale, ridge, seed

    def supervised_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the global classifier on images x [M, ...] with labels y [M]."""
        logits = self.classifier(self.encoder(x).flatten(1))  # [M, num_classes]
        loss = F.cross_entropy(logits, y)
        return loss, classification_metrics(loss, logits, y)

    def logits(self, episode: Episode) -> Tensor:
        """Query logits [B, N*Q, N] of the closed-form ridge head of every task."""
        support_z, query_z = embed_episode(self.encoder, episode)
        support_z, query_z = support_z.flatten(2), query_z.flatten(2)  # [B, S, D], [B, Q, D]
        if self.head_kind == "cosine":
            support_z, query_z = F.normalize(support_z, dim=-1), F.normalize(query_z, dim=-1)
        targets = one_hot(episode.support_y, episode.ways, support_z.dtype)  # [B, S, N]
        gram = support_z @ support_z.transpose(1, 2)  # [B, S, S]
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        alpha = torch.linalg.solve(gram + self.ridge * eye, targets)  # [B, S, N]
        return self.scale * (query_z @ support_z.transpose(1, 2)) @ alpha  # [B, Q, N]

    def meta_loss(self, episode: Episode) -> tuple[Tensor, dict[str, float]]:
        logits = self.logits(episode)
        loss = F.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten())
        return loss, classification_metrics(loss, logits, episode.query_y)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> HeadPredictor:
        ways = task_ways(support_y)
        with torch.no_grad():
            support_z = frozen_forward(self.encoder, support_x).flatten(1)  # [NK, D]
        generator = torch.Generator().manual_seed(self.seed)
        with torch.inference_mode(False):  # the head must be trainable even if the caller is in inference mode
            head = make_head(self.head_kind, support_z.shape[1], ways, self.scale, generator).to(support_z)
            fit_head(head, support_z, support_y.long(), self.finetune_steps, self.finetune_lr)
        return HeadPredictor(self.encoder, head)
