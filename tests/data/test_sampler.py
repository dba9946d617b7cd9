import pytest
import torch

from fewshot.data import Episode, EpisodeSampler, FewShotDataset
from fewshot.data.sampler import sample_subsets


def make_dataset(classes=10, per_class=6, dim=3):
    labels = torch.arange(classes).repeat_interleave(per_class)
    # each example's first feature is its own index, so episodes can be traced back
    data = torch.cat([torch.arange(len(labels)).float()[:, None], torch.randn(len(labels), dim - 1)], 1)
    return FewShotDataset(data, labels, classes=[f"c{i}" for i in range(classes)], name="toy")


def indices(x):
    return x[..., 0].long()


def test_shapes_and_label_remapping():
    ds = make_dataset()
    ep = EpisodeSampler(ds, ways=5, shots=2, queries=3, seed=0).sample(4)
    assert ep.support_x.shape == (4, 10, 3) and ep.query_x.shape == (4, 15, 3)
    assert torch.equal(ep.support_y[0], torch.arange(5).repeat_interleave(2))
    assert torch.equal(ep.query_y[1], torch.arange(5).repeat_interleave(3))
    # every remapped label points at one original class, the same in support and query
    for b in range(4):
        s_cls = ds.labels[indices(ep.support_x[b])]
        q_cls = ds.labels[indices(ep.query_x[b])]
        for c in range(5):
            assert s_cls[ep.support_y[b] == c].unique().numel() == 1
            assert torch.equal(s_cls[ep.support_y[b] == c].unique(), q_cls[ep.query_y[b] == c].unique())
        assert s_cls.unique().numel() == 5


def test_no_overlap_and_every_example_reachable():
    ds = make_dataset(classes=6, per_class=5)
    sampler = EpisodeSampler(ds, ways=3, shots=1, queries=2, seed=1)
    seen = torch.zeros(len(ds))
    for _ in range(200):
        ep = sampler.sample(2)
        s, q = indices(ep.support_x), indices(ep.query_x)
        for b in range(2):
            assert not set(s[b].tolist()) & set(q[b].tolist())
            both = torch.cat([s[b], q[b]])
            assert both.unique().numel() == both.numel()
        seen[s.flatten()] += 1
        seen[q.flatten()] += 1
    assert (seen > 0).all()
    # roughly uniform use of examples: 200 * 2 tasks * 9 picks / 30 examples = 120 each
    assert seen.min() > 60 and seen.max() < 190


@pytest.mark.parametrize("limit", [1 << 20, 0])  # sorting random keys, Floyd's algorithm
def test_sample_subsets_uniform(limit, monkeypatch):
    monkeypatch.setattr("fewshot.data.sampler.SORT_LIMIT", limit)
    g = torch.Generator().manual_seed(0)
    picks = sample_subsets(torch.full((20000,), 5), 2, g)  # ordered pairs from 0..4
    assert (picks[:, 0] != picks[:, 1]).all() and picks.max() == 4
    pairs = torch.bincount(picks[:, 0] * 5 + picks[:, 1], minlength=25).float()
    valid = pairs[pairs > 0]
    assert valid.numel() == 20  # all 20 ordered pairs occur
    assert (valid / 1000 - 1).abs().max() < 0.15
    mixed = sample_subsets(torch.tensor([3, 50, 7]), 3, g)  # rows of different sizes
    assert (mixed < torch.tensor([3, 50, 7])[:, None]).all()
    assert all(row.unique().numel() == 3 for row in mixed)


def test_reproducible_from_seed_and_fixed_eval_set():
    ds = make_dataset()
    a = EpisodeSampler(ds, 5, 1, 2, seed=7)
    b = EpisodeSampler(ds, 5, 1, 2, seed=7)
    assert torch.equal(a.sample(3).support_x, b.sample(3).support_x)
    assert not torch.equal(a.sample(3).support_x, EpisodeSampler(ds, 5, 1, 2, seed=8).sample(3).support_x)
    first = [e.query_x for e in a.episodes(5)]
    a.sample(10)  # consuming the training stream does not change the evaluation set
    again = [e.query_x for e in a.episodes(5)]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    batched = torch.cat([e.query_x for e in a.episodes(5, batch_size=2)])
    assert torch.equal(batched, torch.cat(first))


def test_iteration_uses_batch_size():
    it = iter(EpisodeSampler(make_dataset(), 2, 1, 1, batch_size=3))
    assert next(it).batch_size == 3


def test_small_class_is_named_or_dropped():
    labels = torch.tensor([0] * 5 + [1] * 2 + [2] * 5 + [3] * 5)
    ds = FewShotDataset(torch.randn(len(labels), 2), labels, classes=["a", "tiny", "c", "d"])
    with pytest.raises(ValueError, match=r"fewer than 4 examples \(3 shots \+ 1 queries\): 'tiny' \(2\)"):
        EpisodeSampler(ds, 2, 3, 1)
    sampler = EpisodeSampler(ds, 3, 3, 1, drop_small_classes=True)
    assert sampler.class_ids.tolist() == [0, 2, 3]


def test_too_many_ways():
    with pytest.raises(ValueError, match="11-way episodes need 11 classes"):
        EpisodeSampler(make_dataset(classes=10), 11, 1, 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="shots"):
        EpisodeSampler(make_dataset(), 5, 0, 1)
    with pytest.raises(ValueError, match="queries"):
        EpisodeSampler(make_dataset(), 5, 1, -1)


def test_variable_ways_and_unequal_shots():
    ds = make_dataset(classes=10, per_class=8)
    sampler = EpisodeSampler(ds, ways=(2, 6), shots=(1, 4), queries=2, seed=3)
    ways_seen, shots_seen = set(), set()
    for _ in range(60):
        ep = sampler.sample()
        n = ep.ways
        ways_seen.add(n)
        counts = torch.bincount(ep.support_y[0], minlength=n)
        shots_seen.update(counts.tolist())
        assert torch.equal(torch.bincount(ep.query_y[0]), torch.full((n,), 2))
        s, q = indices(ep.support_x[0]), indices(ep.query_x[0])
        assert not set(s.tolist()) & set(q.tolist())
    assert ways_seen == set(range(2, 7)) and shots_seen == {1, 2, 3, 4}
    with pytest.raises(ValueError, match="one task at a time"):
        sampler.sample(2)


def test_datasets_without_gather_read_items():
    ds = make_dataset()

    class Lazy:
        labels, num_classes, classes = ds.labels, ds.num_classes, ds.classes

        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return ds[i]

    a = EpisodeSampler(ds, 3, 2, 2, seed=5).sample(2)
    b = EpisodeSampler(Lazy(), 3, 2, 2, seed=5).sample(2)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def test_episode_helpers():
    ep = EpisodeSampler(make_dataset(), 5, 1, 2).sample(4)
    assert ep.task(2).batch_size == 1 and torch.equal(ep.task(2).query_x[0], ep.query_x[2])
    parts = ep.split(2)
    assert [p.batch_size for p in parts] == [2, 2] and torch.equal(parts[1].support_x, ep.support_x[2:])
    assert ep.to("cpu").support_x.device.type == "cpu"
    with pytest.raises(ValueError, match="leading task axis"):
        Episode(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(1, 3), torch.zeros(2, 3))
