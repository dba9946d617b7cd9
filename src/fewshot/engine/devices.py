"""Devices: a device name resolved with one clear error, and datasets moved to it once."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked to exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r}: valid devices are auto, cpu, cuda, cuda:N, mps") from None


def to_device(data, device: torch.device):
    """Datasets held as one tensor move to the training device once (sampling = gather)."""
    return data.to(device) if data is not None and hasattr(data, "to") and device.type != "cpu" else data
