"""Tiny assay tables the molecule tests write themselves."""

from pathlib import Path

# (smiles, assay A, assay B, assay C): A has 4 actives, B 1 active, C unmeasured for most molecules
TINY_ROWS = [
    ("CCO", "1", "0", ""),
    ("c1ccccc1O", "1", "0", "1"),
    ("CC(=O)Oc1ccccc1C(=O)O", "1", "", "0"),
    ("CCN(CC)CC", "1", "1", ""),
    ("CC(C)Cc1ccc(cc1)C(C)C(=O)O", "0", "0", ""),
    ("O=C(O)c1ccccc1", "0", "0", ""),
    ("CCCCCC", "0", "0", ""),
    ("c1ccc2ccccc2c1", "0", "0", ""),
    ("CN1CCC[C@H]1c1cccnc1", "0", "0", "1"),
    ("C1CCCCC1", "0", "", "0"),
]


def write_table(path: Path, rows=TINY_ROWS, header=("smiles", "A", "B", "C")) -> Path:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        import gzip

        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path
