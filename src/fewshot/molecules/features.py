"""Featurised molecule tables: rows are gathered into float tensors when an episode is drawn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from fewshot.molecules.graphs import max_atoms, pack_graphs

_BIT_MASKS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)  # np.packbits order


class Features(Protocol):
    """What every feature table offers: its length, rows as float tensors, and their largest graph."""

    def __len__(self) -> int: ...

    def take(self, index: Tensor, atoms: int | None = None) -> Tensor: ...

    def max_atoms(self, index: Tensor) -> int: ...


class DenseFeatures:
    """A [M, D] table (fingerprints, descriptors); ``take(index)`` -> float [n, D].

    ``bits``: uint8 [M, D / 8] packed 0/1 values (ECFP bits); else ``values`` [M, D].
    ``transform`` (a ``Standardizer``) is applied after gathering. ``needs_standardizer``:
    the values are raw descriptors, to be standardised with training statistics.
    """

    def __init__(
        self,
        values: Tensor | None = None,
        bits: Tensor | None = None,
        transform: Callable[[Tensor], Tensor] | None = None,
        needs_standardizer: bool = False,
    ):
        if values is not None and bits is None:
            self.table, self.packed = values, False
        elif bits is not None and values is None:
            self.table, self.packed = bits, True
        else:
            raise ValueError("DenseFeatures needs exactly one of values or bits")
        self.transform, self.needs_standardizer = transform, needs_standardizer

    @property
    def values(self) -> Tensor | None:
        return None if self.packed else self.table

    @property
    def bits(self) -> Tensor | None:
        return self.table if self.packed else None

    def __len__(self) -> int:
        return len(self.table)

    @property
    def dim(self) -> int:
        return self.table.shape[1] * (8 if self.packed else 1)

    def raw(self, index: Tensor) -> Tensor:
        if self.packed:
            packed = self.table[index]  # [n, D/8]
            return (packed[:, :, None] & _BIT_MASKS).ne(0).flatten(1).float()  # [n, D]
        return self.table[index].float()  # [n, D]

    def take(self, index: Tensor, atoms: int | None = None) -> Tensor:
        x = self.raw(index)
        return x if self.transform is None else self.transform(x)

    def max_atoms(self, index: Tensor) -> int:
        return 0


class GraphFeatures:
    """Ragged molecular graphs (see ``graphs``); ``take(index, atoms)`` -> packed float [n, A*(F+A)]."""

    def __init__(self, arrays: dict[str, Tensor]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["atom_ptr"]) - 1

    @property
    def atom_dim(self) -> int:
        return self.arrays["atoms"].shape[1]

    def take(self, index: Tensor, atoms: int | None = None) -> Tensor:
        return pack_graphs(self.arrays, index, atoms)

    def max_atoms(self, index: Tensor) -> int:
        return max_atoms(self.arrays, index)


class JoinedFeatures:
    """Several feature tables of the same molecules side by side: [n, D1 + D2 + ...].

    At most one graph part, and it comes last, so encoders split off the fixed-size
    prefix (fingerprints, descriptors) and unpack the rest as a graph.
    """

    def __init__(self, parts: Sequence[DenseFeatures | GraphFeatures]):
        if len({len(p) for p in parts}) != 1:
            raise ValueError("joined feature tables must have the same number of molecules")
        graphs = [i for i, p in enumerate(parts) if isinstance(p, GraphFeatures)]
        if len(graphs) > 1 or (graphs and graphs[0] != len(parts) - 1):
            raise ValueError("at most one graph featurizer, and it must come last")
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts[0])

    def take(self, index: Tensor, atoms: int | None = None) -> Tensor:
        if atoms is None:
            atoms = self.max_atoms(index) or None
        return torch.cat([p.take(index, atoms) for p in self.parts], dim=-1)

    def max_atoms(self, index: Tensor) -> int:
        return max(p.max_atoms(index) for p in self.parts)


class RowFeatures:
    """The rows ``rows`` [m] of a larger table (the molecules of one assay)."""

    def __init__(self, table: Features, rows: Tensor):
        self.table, self.rows = table, rows

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index: Tensor, atoms: int | None = None) -> Tensor:
        return self.table.take(self.rows[index], atoms)

    def max_atoms(self, index: Tensor) -> int:
        return self.table.max_atoms(self.rows[index])
