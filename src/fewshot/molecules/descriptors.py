"""RDKit 2D descriptors, standardised with statistics of the training molecules."""

from __future__ import annotations

import numpy as np
import torch
from rdkit.Chem import Descriptors
from torch import Tensor

CLIP = 10.0  # standardised values beyond +-CLIP (heavy-tailed descriptors such as Ipc) are clipped


class RDKitDescriptors:
    """RDKit's 2D descriptor set (``Descriptors.descList``, or the ``names`` given).

    ``compute(mols)`` -> float32 [M, D] raw values; non-finite values become NaN and are
    set to 0 (the training mean) after standardisation.
    """

    kind = "dense"
    name = "rdkit2d"

    def __init__(self, names: list[str] | None = None):
        table = dict(Descriptors.descList)
        self.names = list(names) if names is not None else list(table)
        unknown = [n for n in self.names if n not in table]
        if unknown:
            raise ValueError(f"unknown RDKit descriptors: {', '.join(unknown)}")
        self._functions = [table[n] for n in self.names]

    @property
    def dim(self) -> int:
        return len(self.names)

    def spec(self) -> dict:
        return {"featurizer": "rdkit2d", "names": self.names}

    def compute(self, mols) -> dict[str, np.ndarray]:
        out = np.full((len(mols), len(self.names)), np.nan, dtype=np.float64)  # [M, D]
        for i, mol in enumerate(mols):
            for j, fn in enumerate(self._functions):
                try:
                    out[i, j] = fn(mol)
                except Exception:  # RDKit raises a variety of errors on odd molecules: a missing value
                    pass
        with np.errstate(over="ignore", invalid="ignore"):
            values = out.astype(np.float32)
        values[~np.isfinite(values)] = np.nan  # also what overflowed float32
        return {"values": values}

    def __repr__(self) -> str:
        return f"RDKitDescriptors({len(self.names)} descriptors)"


class Standardizer:
    """``(x - mean) / std`` with the training set's statistics; NaN -> 0, clipped to +-CLIP."""

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean.float(), std.float()

    @classmethod
    def fit(cls, x: Tensor) -> Standardizer:
        """Statistics of training values x [M, D] (NaN ignored; constant columns get std 1)."""
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"Standardizer.fit needs training values [M, D] with M > 0, got {tuple(x.shape)}")
        x = x.double()
        finite = torch.isfinite(x)
        count = finite.sum(0).clamp(min=1)
        mean = torch.where(finite, x, 0).sum(0) / count
        var = torch.where(finite, (x - mean) ** 2, 0).sum(0) / count
        std = var.sqrt()
        std = torch.where(torch.isfinite(std) & (std > 1e-8), std, torch.ones_like(std))
        return cls(torch.nan_to_num(mean).float(), std.float())

    def __call__(self, x: Tensor) -> Tensor:
        z = (x.float() - self.mean) / self.std  # [M, D]
        return torch.nan_to_num(z, nan=0.0, posinf=CLIP, neginf=-CLIP).clamp(-CLIP, CLIP)

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "std": self.std}
