"""Modules as dicts of tensors: the parameters and buffers ``functional_call`` takes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

Params = dict[str, Tensor]
BN_MODES = ("batch", "running")


def parameters(module: nn.Module, trainable: bool | None = None) -> Params:
    """``name -> parameter`` (the module's own tensors, not copies), optionally only the
    trainable (``requires_grad``) or only the frozen ones."""
    return {k: p for k, p in module.named_parameters() if trainable is None or p.requires_grad == trainable}


def buffers(module: nn.Module) -> Params:
    """``name -> buffer`` for every buffer that is set (the module's own tensors)."""
    return {k: b for k, b in module.named_buffers() if b is not None}


def detach(params: Mapping[str, Tensor]) -> Params:
    """The same values cut from the autograd graph (shares storage)."""
    return {k: v.detach() for k, v in params.items()}


def select(params: Mapping[str, Tensor], prefixes: Iterable[str]) -> Params:
    """Entries named ``prefix`` or ``prefix.*`` for any of ``prefixes``."""
    prefixes = tuple(prefixes)
    return {k: v for k, v in params.items() if any(k == p or k.startswith(p + ".") for p in prefixes)}


def strip(params: Mapping[str, Tensor | None], prefix: str) -> dict[str, Tensor | None]:
    """Entries under ``prefix.``, renamed relative to that submodule."""
    cut = len(prefix) + 1
    return {k[cut:]: v for k, v in params.items() if k.startswith(prefix + ".")}


def batch_norm_modules(module: nn.Module) -> dict[str, _BatchNorm]:
    """Every BatchNorm layer (1d/2d/3d, SyncBatchNorm) by its qualified name."""
    return {name: m for name, m in module.named_modules() if isinstance(m, _BatchNorm)}


def running_stat_names(module: nn.Module) -> list[str]:
    """Qualified names of the BatchNorm running-statistic buffers."""
    names = []
    for prefix, m in batch_norm_modules(module).items():
        for b in ("running_mean", "running_var", "num_batches_tracked"):
            if getattr(m, b, None) is not None:
                names.append(f"{prefix}.{b}" if prefix else b)
    return names


def functional_buffers(module: nn.Module, bn: str = "batch") -> dict[str, Tensor | None]:
    """Buffers to hand to ``functional_call`` under a BatchNorm policy.

    ``bn="batch"``: the running statistics are replaced by ``None``, so every
    BatchNorm normalises with the statistics of the batch it sees, in train and eval
    mode alike, and never writes a buffer (safe under ``vmap`` and ``torch.compile``).
    ``bn="running"``: the module's buffers as they are; use with :func:`bn_eval`.
    """
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {BN_MODES}, got {bn!r}")
    out: dict[str, Tensor | None] = dict(buffers(module))
    if bn == "batch":
        out.update(dict.fromkeys(running_stat_names(module)))
    return out


@contextlib.contextmanager
def bn_eval(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Put every BatchNorm layer in eval mode (normalise with, and never update, the
    running statistics) for the duration; restores each layer's mode afterwards."""
    layers = list(batch_norm_modules(module).values()) if enabled else []
    modes = [m.training for m in layers]
    try:
        for m in layers:
            m.training = False
        yield
    finally:
        for m, mode in zip(layers, modes):
            m.training = mode


def call(module: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor | None], *args) -> Tensor:
    """``module(*args)`` with its parameters and buffers taken from the dicts."""
    dicts = ({**buffers}, {**params})  # a None buffer: a running statistic that is not used
    return torch.func.functional_call(module, dicts, args, strict=False)  # type: ignore[arg-type]
