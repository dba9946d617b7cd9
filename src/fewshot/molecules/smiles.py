"""SMILES -> RDKit molecules and canonical SMILES; invalid entries are counted and skipped."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from rdkit import Chem, RDLogger

logger = logging.getLogger(__name__)
RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]  # missing from RDKit's stubs; RDKit's own per-molecule chatter; we report counts instead


class InvalidSmilesError(ValueError):
    """A SMILES string that RDKit cannot parse, with its position in the input."""

    def __init__(self, index: int, smiles: str, where: str = "input"):
        self.index, self.smiles, self.where = index, smiles, where
        super().__init__(f"invalid SMILES at {where} index {index}: {smiles!r}")


@dataclass
class Parsed:
    """Parsed molecules of an input list: ``mols[i]`` came from ``smiles[kept[i]]``."""

    mols: list = field(repr=False)
    canonical: list[str] = field(repr=False)
    kept: list[int] = field(repr=False)
    invalid: list[int]
    total: int

    @property
    def num_invalid(self) -> int:
        return len(self.invalid)


def to_mol(smiles: str):
    """RDKit molecule of one SMILES string, or ``None`` if it does not parse (empty counts as invalid)."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    return Chem.MolFromSmiles(smiles.strip())


def canonical_smiles(smiles: str) -> str:
    """RDKit's canonical SMILES; raises ``InvalidSmilesError`` when it does not parse."""
    mol = to_mol(smiles)
    if mol is None:
        raise InvalidSmilesError(0, smiles)
    return Chem.MolToSmiles(mol)


def parse_smiles(
    smiles: Sequence[str], *, strict: bool = False, where: str = "input", level: int = logging.WARNING
) -> Parsed:
    """Parse every SMILES; invalid ones are skipped and logged as one warning with their count.

    ``strict=True`` raises ``InvalidSmilesError`` naming the first invalid index instead
    (for support and query sets given by a user, where a silent skip would shift rows).
    ``level``: the logging level of the skip report (callers that summarise pass DEBUG).
    """
    mols, canonical, kept, invalid = [], [], [], []
    for i, s in enumerate(smiles):
        mol = to_mol(s)
        if mol is None:
            if strict:
                raise InvalidSmilesError(i, s, where)
            invalid.append(i)
            continue
        mols.append(mol)
        canonical.append(Chem.MolToSmiles(mol))
        kept.append(i)
    if invalid:
        shown = ", ".join(str(i) for i in invalid[:5]) + (" ..." if len(invalid) > 5 else "")
        logger.log(level, "%s: skipped %d of %d invalid SMILES (rows %s)", where, len(invalid), len(smiles), shown)
    return Parsed(mols, canonical, kept, invalid, len(smiles))
