import pytest
import torch
from molhelpers import write_table

from fewshot.molecules.assays import load_assays
from fewshot.molecules.protocols import (
    balanced_support,
    fsmol_episodes,
    moleculenet_episodes,
    stratified_support,
)


def labels_with(actives: int, inactives: int) -> torch.Tensor:
    y = torch.cat([torch.ones(actives), torch.zeros(inactives)]).long()
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(7))]


@pytest.mark.parametrize("actives,inactives,size", [(100, 300, 16), (50, 50, 32), (20, 380, 64), (5, 200, 16)])
def test_stratified_support_keeps_the_ratio(actives, inactives, size):
    y = labels_with(actives, inactives)
    support, query = stratified_support(y, size, torch.Generator().manual_seed(0))
    assert len(support) == size and len(query) == len(y) - size
    assert len(set(support.tolist()) | set(query.tolist())) == len(y)  # a partition of the task
    expected = size * actives / len(y)
    assert abs(int(y[support].sum()) - expected) <= 0.5 or int(y[support].sum()) == 1
    assert 0 < int(y[query].sum()) < len(query)


def test_stratified_support_reproduces_from_the_seed():
    y = labels_with(60, 140)
    a = stratified_support(y, 32, torch.Generator().manual_seed(3))
    b = stratified_support(y, 32, torch.Generator().manual_seed(3))
    c = stratified_support(y, 32, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("actives,inactives,size", [(1, 100, 16), (0, 100, 16), (10, 10, 19), (3, 3, 1)])
def test_stratified_support_refuses_tasks_too_small(actives, inactives, size):
    with pytest.raises(ValueError, match="too small|at least 2"):
        stratified_support(labels_with(actives, inactives), size, torch.Generator())


def test_balanced_support():
    y = labels_with(12, 30)
    support, query = balanced_support(y, 10, torch.Generator().manual_seed(0))
    assert y[support].tolist() == [0] * 10 + [1] * 10
    assert len(query) == 22 and y[query].sum() == 2
    support, query = balanced_support(y, 1, torch.Generator().manual_seed(0), queries=5)
    assert y[query].tolist() == [0] * 5 + [1] * 5
    with pytest.raises(ValueError, match="cannot give 12"):
        balanced_support(y, 12, torch.Generator())


def test_fsmol_protocol_episodes(tmp_path):
    rows = [(s, str(i % 3 == 0)) for i, s in enumerate(["C" * (n + 1) for n in range(30)])]
    rows = [(s, "1" if a == "True" else "0") for s, a in rows]
    path = write_table(tmp_path / "t.csv", rows, ("smiles", "A"))
    family = load_assays(path, "train", train_tasks=1, cache=False)
    episodes = list(fsmol_episodes(family, sizes=(8, 16), draws=3, seed=5))
    assert [(e.support_size, e.draw) for e in episodes] == [(8, 0), (8, 1), (8, 2), (16, 0), (16, 1), (16, 2)]
    e = episodes[0].episode
    assert e.batch_size == 1 and e.support_x.shape == (1, 8, 2048) and e.query_x.shape == (1, 22, 2048)
    assert int(e.support_y.sum()) == 3  # 10 of 30 active -> 8 * 1/3 = 2.67 -> 3
    again = next(iter(fsmol_episodes(family, sizes=(8,), draws=1, seed=5))).episode
    assert torch.equal(again.support_x, e.support_x)  # draw 0 of size 8 whatever else is evaluated


def test_moleculenet_protocol_skips_small_tasks(tiny_csv, caplog):
    family = load_assays(tiny_csv, "train", train_tasks=["A", "B"], test_tasks=[], cache=False)
    episodes = list(moleculenet_episodes(family, shots=(1, 3), draws=2))
    assert {(e.task, e.support_size) for e in episodes} == {("A", 1), ("A", 3)}
    assert "skipped 1 of 2 tasks too small for shots 1" in caplog.text
    e = episodes[0].episode
    assert e.support_y.tolist() == [[0, 1]] and e.query_x.shape[1] == 8
