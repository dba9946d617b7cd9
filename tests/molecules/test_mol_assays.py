import logging

import pytest
import torch
from molhelpers import TINY_ROWS, write_table

from fewshot.data.episode import Episode
from fewshot.molecules.assays import load_assays, read_assay_table, split_assays
from fewshot.molecules.tasks import AssayTasks


def test_table_reads_blanks_as_unmeasured(tiny_csv):
    table = read_assay_table(tiny_csv)
    assert table.assays == ["A", "B", "C"] and len(table.smiles) == 10
    assert torch.isnan(table.labels[0, 2]) and table.labels[3, 1] == 1


def test_gzipped_table_and_named_split(tmp_path):
    path = write_table(tmp_path / "tiny.csv.gz")
    family = load_assays(path, "test", train_tasks=["A"], test_tasks=["B", "C"], cache=False)
    assert family.task == "classification"
    assert family.num_tasks == 2 and family.task_names == ["B", "C"]
    b, c = family.tasks
    assert len(b) == 8 and int(b.labels.sum()) == 1  # two blanks of B are not molecules of task B
    assert len(c) == 4 and c.labels.tolist() == [1, 0, 1, 0]


def test_first_n_last_m_split(tiny_csv):
    assert split_assays(["a", "b", "c", "d"], 2, 1) == {"train": ["a", "b"], "test": ["d"], "val": []}
    assert load_assays(tiny_csv, "train", train_tasks=1, test_tasks=2, cache=False).task_names == ["A"]
    with pytest.raises(ValueError, match="both training and held-out"):
        split_assays(["a", "b"], ["a"], ["a"])
    with pytest.raises(ValueError, match="not in the table: Z"):
        load_assays(tiny_csv, "train", train_tasks=["Z"], cache=False)
    with pytest.raises(ValueError, match="give train_tasks"):
        load_assays(tiny_csv, "train", cache=False)
    with pytest.raises(ValueError, match="no val assays"):
        load_assays(tiny_csv, "val", train_tasks=1, cache=False)


@pytest.mark.parametrize(
    "header,rows,message",
    [
        (("molecule_id", "A"), [("m1", "1")], "no SMILES column"),
        (("smiles",), [("CCO",)], "no assay columns"),
        (("smiles", "A"), [("CCO", "0.5")], "'A' line 2: '0.5' is not a binary label"),
        (("smiles", "A"), [], "no molecules"),
    ],
)
def test_malformed_tables_give_one_clear_error(tmp_path, header, rows, message):
    path = write_table(tmp_path / "bad.csv", rows, header)
    with pytest.raises(ValueError, match=message):
        load_assays(path, "train", train_tasks=1, cache=False)


def test_named_smiles_column(tmp_path):
    path = write_table(tmp_path / "t.csv", [(r[0], r[1]) for r in TINY_ROWS], ("Drug", "A"))
    with pytest.raises(ValueError, match="no SMILES column"):
        load_assays(path, "train", train_tasks=1, cache=False)
    assert load_assays(path, "train", train_tasks=1, smiles_column="drug", cache=False).num_tasks == 1


def test_invalid_smiles_rows_are_dropped_from_every_task(tmp_path, caplog):
    rows = [("C1CC", "1", "1", "1")] + TINY_ROWS + [("XX", "0", "0", "0")]
    path = write_table(tmp_path / "t.csv", rows)
    with caplog.at_level(logging.WARNING):
        family = load_assays(path, "train", train_tasks=["A", "B", "C"], test_tasks=[], cache=False)
    assert "skipped 2 of 12 invalid SMILES" in caplog.text
    assert family.info["invalid_smiles"] == 2
    assert [len(t) for t in family.tasks] == [10, 8, 4]


def test_sample_tasks_is_a_balanced_episode(tiny_csv):
    family = load_assays(tiny_csv, "train", train_tasks=["A"], test_tasks=["B"], cache=False)
    ep = family.sample_tasks(3, 2, 2, torch.Generator().manual_seed(0))
    assert isinstance(ep, Episode)
    assert ep.support_x.shape == (3, 4, 2048) and ep.query_x.shape == (3, 4, 2048)
    assert ep.support_y.dtype == torch.long and ep.support_y.tolist() == [[0, 0, 1, 1]] * 3
    assert ep.support_x.dtype == torch.float32
    again = family.sample_tasks(3, 2, 2, torch.Generator().manual_seed(0))
    assert torch.equal(ep.support_x, again.support_x)
    # labels agree with the features: every support/query row is a distinct molecule of its class
    task = family.tasks[0]
    feats = task.gather(torch.arange(len(task)))
    for x, y in ((ep.support_x[0], ep.support_y[0]), (ep.query_x[0], ep.query_y[0])):
        for row, label in zip(x, y):
            match = (feats == row).all(1).nonzero().flatten()
            assert len(match) == 1 and task.labels[match[0]] == label
    both = torch.cat([ep.support_x[0], ep.query_x[0]])
    assert len(torch.unique(both, dim=0)) == 8


def test_tasks_with_too_few_actives_are_skipped_with_a_count(tiny_csv, caplog):
    family = load_assays(tiny_csv, "train", train_tasks=["A", "B"], test_tasks=[], cache=False)
    with caplog.at_level(logging.WARNING):
        ep = family.sample_tasks(2, 1, 1, torch.Generator().manual_seed(0))
    assert "skipped 1 of 2 assays with fewer than 2 actives or inactives" in caplog.text
    assert ep.batch_size == 2  # drawn again from the one eligible assay
    with pytest.raises(ValueError, match="no assay has 5 actives and inactives"):
        family.sample_tasks(1, 3, 2, torch.Generator())


def test_graph_episodes_share_one_packing_width(tiny_csv):
    family = load_assays(tiny_csv, "train", train_tasks=["A"], test_tasks=[], featurizer="ecfp+graph", cache=False)
    ep = family.sample_tasks(2, 2, 2, torch.Generator().manual_seed(1))
    assert ep.support_x.shape[-1] == ep.query_x.shape[-1] > 2048


def test_descriptors_use_training_molecules_only(tiny_csv):
    kw = dict(train_tasks=["C"], test_tasks=["A"], featurizer={"rdkit2d": {"names": ["MolWt"]}}, cache=False)
    train = load_assays(tiny_csv, "train", **kw)
    c = train.tasks[0]
    z = c.gather(torch.arange(len(c)))  # the 4 molecules measured for C
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-5)
    test = load_assays(tiny_csv, "test", **kw)
    assert float(test.tasks[0].gather(torch.arange(10)).mean()) != pytest.approx(0.0, abs=1e-3)


def test_an_assay_without_actives_is_skipped_in_training_and_evaluation(tmp_path, caplog):
    from fewshot.molecules.protocols import fsmol_episodes

    rows = [(s, a, "0") for s, a, _, _ in TINY_ROWS]
    path = write_table(tmp_path / "t.csv", rows, ("smiles", "A", "Dead"))
    family = load_assays(path, "train", train_tasks=["A", "Dead"], test_tasks=[], cache=False)
    dead = family.tasks[1]
    assert len(dead.actives) == 0 and dead.fraction_active == 0
    with caplog.at_level(logging.WARNING):
        ep = family.sample_tasks(2, 1, 1, torch.Generator().manual_seed(0))
        episodes = list(fsmol_episodes(family, sizes=(4,), draws=2))
    assert ep.batch_size == 2 and {e.task for e in episodes} == {"A"}
    assert "skipped 1 of 2 assays" in caplog.text and "skipped 1 of 2 tasks too small for support size 4" in caplog.text
    with pytest.raises(ValueError, match="no assays to draw tasks from"):
        AssayTasks([], "empty")


def test_the_core_registry_loads_assay_tables(tmp_path):
    from fewshot.data import get_dataset

    path = write_table(tmp_path / "tiny.csv")
    family = get_dataset("assays", root=path, split="test", train_tasks=["A"], test_tasks=["B", "C"], cache=False)
    assert isinstance(family, AssayTasks) and family.assay_names == ["B", "C"] and family.num_tasks == 2
    with pytest.raises(ValueError, match="unknown dataset .assays. option.s. bogus"):
        get_dataset("assays", root=path, split="test", bogus=1)
