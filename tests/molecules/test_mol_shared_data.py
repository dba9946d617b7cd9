"""Loaders on the real data in ../shared/data/molecules, checked against its README's counts."""

import pytest
import torch

from fewshot.molecules.assays import load_assays, read_assay_table
from fewshot.molecules.fsmol import fsmol_files, load_fs_mol, missing_from_release, read_fsmol_task


@pytest.mark.parametrize(
    "file,molecules,assays,train,test,last",
    [
        ("tox21.csv", 7831, 12, 9, 3, ["SR-HSE", "SR-MMP", "SR-p53"]),
        ("sider.csv", 1427, 27, 21, 6, None),
        ("muv.csv.gz", 93087, 17, 12, 5, None),
    ],
)
def test_moleculenet_tables(molecules_data, file, molecules, assays, train, test, last):
    table = read_assay_table(molecules_data / file)
    assert len(table.smiles) == molecules and len(table.assays) == assays
    assert train + test == assays
    if last:
        assert table.assays[-test:] == last


def test_tox21_standard_split(molecules_data):
    train = load_assays(molecules_data, "train", dataset="tox21")
    test = load_assays(molecules_data / "tox21.csv", "test")
    assert train.num_tasks == 9 and test.task_names == ["SR-HSE", "SR-MMP", "SR-p53"]
    assert train.info["molecules"] == 7831 and train.info["invalid_smiles"] < 0.005 * 7831
    ep = test.sample_tasks(3, 10, 5, torch.Generator().manual_seed(0))
    assert ep.support_x.shape == (3, 20, 2048)


def test_fsmol_counts(molecules_data):
    root = molecules_data / "fs-mol"
    if not (root / "test").is_dir():
        pytest.skip(f"FS-Mol not found at {root}")
    counts = {split: len(fsmol_files(root, split)) for split in ("train", "valid", "test")}
    assert counts == {"train": 4935, "valid": 39, "test": 157}
    labels = [read_fsmol_task(p)[1] for p in fsmol_files(root, "test")]
    sizes = [len(y) for y in labels]
    assert sum(sizes) == 56220 and min(sizes) >= 130 and max(sizes) == 3594
    assert sum(map(sum, labels)) / sum(sizes) == pytest.approx(0.457, abs=0.001)
    names = [p.name.split(".")[0] for p in fsmol_files(root, "valid")]
    assert len(missing_from_release(root, "valid", names)) == 1
    family = load_fs_mol(root, "test", tasks=2)
    assert family.num_tasks == 2 and family.task_names == names_of(root, "test")[:2]
    with pytest.raises(ValueError, match="unknown FS-Mol split"):
        load_fs_mol(root, "trainval")


def names_of(root, split):
    return [p.name.split(".")[0] for p in fsmol_files(root, split)]
