"""Molecular graphs: categorical atom and bond features, stored ragged, packed dense per episode.

Packed layout of one molecule padded to ``A`` atoms (what a GNN encoder reads):
``[A, F + A]`` flattened to ``A * (F + A)`` floats, where row ``i`` holds atom ``i``'s
``F = len(ATOM_VOCAB)`` feature codes shifted by one (all 0 = padding atom) followed by
row ``i`` of the bond matrix: 0 = no bond, else ``1 + type + 4 * conjugated + 8 * in_ring``
with ``type`` 0 single, 1 double, 2 triple, 3 aromatic.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from rdkit import Chem
from torch import Tensor

ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P", "B", "Si", "Se", "Na", "K", "H")  # then "other"
HYBRIDIZATION = (
    Chem.HybridizationType.S,
    Chem.HybridizationType.SP,
    Chem.HybridizationType.SP2,
    Chem.HybridizationType.SP3,
    Chem.HybridizationType.SP3D,
    Chem.HybridizationType.SP3D2,
)  # then "other"
# element, degree (0..6+), formal charge (-2..+2), hydrogens (0..4+), hybridisation, aromatic, in ring, chirality
ATOM_VOCAB = (len(ELEMENTS) + 1, 7, 5, 5, len(HYBRIDIZATION) + 1, 2, 2, 4)
BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
NUM_BOND_CODES = 16  # 4 types x conjugated x in ring
_ELEMENT_INDEX = {e: i for i, e in enumerate(ELEMENTS)}
_HYBRID_INDEX = {h: i for i, h in enumerate(HYBRIDIZATION)}


def atom_codes(atom) -> list[int]:
    """The ``len(ATOM_VOCAB)`` categorical codes of one RDKit atom (each in ``0..vocab-1``)."""
    return [
        _ELEMENT_INDEX.get(atom.GetSymbol(), len(ELEMENTS)),
        min(atom.GetDegree(), 6),
        min(max(atom.GetFormalCharge(), -2), 2) + 2,
        min(atom.GetTotalNumHs(), 4),
        _HYBRID_INDEX.get(atom.GetHybridization(), len(HYBRIDIZATION)),
        int(atom.GetIsAromatic()),
        int(atom.IsInRing()),
        min(int(atom.GetChiralTag()), 3),
    ]


def bond_code(bond) -> int:
    """1..16: bond type, conjugation and ring membership in one code (0 is kept for "no bond")."""
    kind = BOND_TYPES.index(bond.GetBondType()) if bond.GetBondType() in BOND_TYPES else 0
    return 1 + kind + 4 * int(bond.GetIsConjugated()) + 8 * int(bond.IsInRing())


class MolGraphs:
    """Graph featurizer: ``compute(mols)`` -> ragged arrays

    atoms [sum atoms, F] uint8, atom_ptr [M + 1], bonds [sum bonds, 3] (begin, end, code) int16,
    bond_ptr [M + 1]; atom and bond indices are local to their molecule. Hydrogens stay implicit.
    """

    kind = "graph"
    name = "graph"
    atom_dim = len(ATOM_VOCAB)

    def spec(self) -> dict:
        return {"featurizer": "graph", "atom_vocab": list(ATOM_VOCAB), "bond_codes": NUM_BOND_CODES}

    def compute(self, mols) -> dict[str, np.ndarray]:
        atoms, bonds, atom_ptr, bond_ptr = [], [], [0], [0]
        for mol in mols:
            atoms += [atom_codes(a) for a in mol.GetAtoms()]
            bonds += [(b.GetBeginAtomIdx(), b.GetEndAtomIdx(), bond_code(b)) for b in mol.GetBonds()]
            atom_ptr.append(len(atoms))
            bond_ptr.append(len(bonds))
        return {
            "atoms": np.asarray(atoms, dtype=np.uint8).reshape(-1, self.atom_dim),
            "atom_ptr": np.asarray(atom_ptr, dtype=np.int64),
            "bonds": np.asarray(bonds, dtype=np.int16).reshape(-1, 3),
            "bond_ptr": np.asarray(bond_ptr, dtype=np.int64),
        }

    def __repr__(self) -> str:
        return "MolGraphs()"


def _ragged_positions(ptr: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For molecules ``index`` [n]: (molecule slot, local position, global row) of each of their items."""
    starts, counts = ptr[index], ptr[index + 1] - ptr[index]  # [n], [n]
    slot = torch.repeat_interleave(torch.arange(len(index)), counts)  # [T]
    offsets = torch.cumsum(counts, 0) - counts  # [n]
    local = torch.arange(int(counts.sum())) - offsets[slot]  # [T]
    return slot, local, starts[slot] + local


def pack_graphs(arrays: dict[str, Tensor], index: Tensor, atoms: int | None = None) -> Tensor:
    """Molecules ``index`` [n] of ragged ``arrays`` -> packed float [n, A * (F + A)] (module docstring).

    ``A = atoms`` or, when None, the largest molecule among ``index``.
    """
    atom_ptr, bond_ptr = arrays["atom_ptr"], arrays["bond_ptr"]
    sizes = atom_ptr[index + 1] - atom_ptr[index]  # [n]
    a = int(sizes.max()) if atoms is None and len(index) else int(atoms or 1)
    if len(index) and int(sizes.max()) > a:
        raise ValueError(f"a molecule has {int(sizes.max())} atoms, more than the packing width {a}")
    f = arrays["atoms"].shape[1]
    out = torch.zeros(len(index), a, f + a)  # [n, A, F + A]
    slot, local, rows = _ragged_positions(atom_ptr, index)
    out[slot, local, :f] = arrays["atoms"][rows].float() + 1  # [T, F]; 0 marks padding
    slot, _, rows = _ragged_positions(bond_ptr, index)
    bonds = arrays["bonds"][rows].long()  # [T, 3]
    code = bonds[:, 2].float()
    out[slot, bonds[:, 0], f + bonds[:, 1]] = code
    out[slot, bonds[:, 1], f + bonds[:, 0]] = code
    return out.flatten(1)


def packed_atoms(length: int, atom_dim: int) -> int:
    """The ``A`` of a packed molecule of ``length = A * (atom_dim + A)`` floats."""
    a = round((-atom_dim + math.sqrt(atom_dim**2 + 4 * length)) / 2)
    if a * (atom_dim + a) != length:
        raise ValueError(f"{length} is not a packed graph length for atom_dim {atom_dim}")
    return a


def max_atoms(arrays: dict[str, Tensor], index: Tensor) -> int:
    """Size of the largest molecule among ``index`` [n]."""
    ptr = arrays["atom_ptr"]
    return int((ptr[index + 1] - ptr[index]).max()) if len(index) else 1
