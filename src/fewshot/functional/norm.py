"""Batch normalisation with batch statistics written out in primitive ops.

Under ``torch.func.vmap`` the fused batch-norm kernels go through functorch batching
rules whose second derivatives are wrong when the normalised input and the affine
weight both depend on the differentiated parameters (seen on torch 2.13 CPU: MAML
meta-gradients of a Conv4 off by ~1%; see also pytorch/functorch#534). Written as
mean / var / rsqrt, autograd differentiates it exactly to any order, batched or not.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode


def _batch_norm_args(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """``F.batch_norm``'s arguments, by name (plain Python, so ``torch.compile`` traces it)."""
    return input, running_mean, running_var, weight, bias, eps


def batch_norm_batch_stats(x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Tensor:
    """``F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)`` from primitives.

    x: [M, C, ...] -> [M, C, ...]
    """
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dims, keepdim=True)  # [1, C, 1, ...]
    var = x.var(dims, unbiased=False, keepdim=True)  # [1, C, 1, ...]
    y = (x - mean) * torch.rsqrt(var + eps)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


class DecomposedBatchNorm(TorchFunctionMode):
    """While active, ``F.batch_norm`` calls without running statistics (what
    ``functional_buffers(..., bn="batch")`` produces) run :func:`batch_norm_batch_stats`;
    every other call is left alone."""

    def __torch_function__(self, func, types, args: tuple = (), kwargs: dict[str, Any] | None = None):
        kwargs = kwargs or {}
        if func is F.batch_norm:
            x, running_mean, running_var, weight, bias, eps = _batch_norm_args(*args, **kwargs)
            if running_mean is None and running_var is None:
                return batch_norm_batch_stats(x, weight, bias, eps)
        return func(*args, **kwargs)
