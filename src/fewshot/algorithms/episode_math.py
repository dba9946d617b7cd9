"""Episode maths shared by the metric learners and the fine-tuning baseline: one-hot labels,
per-class sums and means (prototypes), a whole episode embedded at once, frozen forwards, metrics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.data.episode import Episode
from fewshot.functional import functional_buffers


def one_hot(y: Tensor, ways: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Labels [..., M] in 0..ways-1 -> one-hot [..., M, ways]."""
    return F.one_hot(y.long(), ways).to(dtype)


def class_sums(z: Tensor, y: Tensor, ways: int) -> tuple[Tensor, Tensor]:
    """Per-class sums and counts of embeddings, batched over tasks with one matmul.

    z: [B, M, ...], y: [B, M] -> sums [B, N, ...], counts [B, N]. Works for unequal shots.
    """
    onehot = one_hot(y, ways, z.dtype)  # [B, M, N]
    sums = onehot.transpose(1, 2) @ z.flatten(2)  # [B, N, prod(...)]
    return sums.view(*sums.shape[:2], *z.shape[2:]), onehot.sum(1)


def class_means(z: Tensor, y: Tensor, ways: int) -> Tensor:
    """Prototypes: the mean embedding of each class. z: [B, M, ...], y: [B, M] -> [B, N, ...]."""
    sums, counts = class_sums(z, y, ways)
    return sums / counts.view(*counts.shape, *(1,) * (z.dim() - 2))


def embed_episode(encoder: nn.Module, episode: Episode) -> tuple[Tensor, Tensor]:
    """Support and query embeddings of every task in one encoder call.

    [B, N*K, ...], [B, N*Q, ...] -> [B, N*K, *E], [B, N*Q, *E] for an encoder [M, ...] -> [M, *E].
    BatchNorm (train mode) sees support and query images of all tasks together.
    """
    b, s = episode.support_y.shape
    x = torch.cat([episode.support_x.flatten(0, 1), episode.query_x.flatten(0, 1)])  # [B*(NK+NQ), ...]
    z = encoder(x)  # [B*(NK+NQ), *E]
    return z[: b * s].view(b, s, *z.shape[1:]), z[b * s :].view(b, -1, *z.shape[1:])


def frozen_forward(module: nn.Module, *inputs: Tensor, batch_stats: bool = False) -> Tensor:
    """``module(*inputs)`` without touching its buffers.

    In eval mode this is ``module(*inputs)``. In train mode BatchNorm still normalises with
    batch statistics (the module's mode decides), but its running statistics are
    updated on throw-away copies, so ``adapt`` leaves the whole ``state_dict`` as it was.
    ``batch_stats``: BatchNorm normalises with the statistics of its input in either mode.
    """
    if not (module.training or batch_stats):
        return module(*inputs)
    bn = "batch" if batch_stats else "running"
    buffers = {name: b if b is None else b.clone() for name, b in functional_buffers(module, bn).items()}
    return torch.func.functional_call(module, buffers, inputs)  # type: ignore[arg-type]  # None: unused stats


def task_ways(support_y: Tensor) -> int:
    """Number of classes of one task's labels [M]; every class 0..N-1 must be present."""
    if support_y.dim() != 1 or support_y.numel() == 0:
        raise ValueError(f"support_y must be a non-empty label vector [N*K], got shape {tuple(support_y.shape)}")
    ways = int(support_y.max()) + 1
    missing = (torch.bincount(support_y.long(), minlength=ways) == 0).nonzero().flatten().tolist()
    if missing or int(support_y.min()) < 0:
        raise ValueError(f"support labels must cover 0..{ways - 1} with every class present; missing {missing}")
    return ways


def classification_metrics(loss: Tensor, logits: Tensor, query_y: Tensor) -> dict[str, float]:
    """``loss`` and ``accuracy`` (argmax of logits [B, NQ, N] against labels [B, NQ])."""
    accuracy = (logits.argmax(-1) == query_y).float().mean()
    return {"loss": float(loss.detach()), "accuracy": float(accuracy)}
