import math

import pytest
import torch

from fewshot.data import EpisodeSampler, FewShotDataset, get_dataset
from fewshot.engine import confidence_interval, evaluate, evaluate_episodes


def clustered(classes=8, per_class=10, noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, 4, generator=g) * 5
    labels = torch.arange(classes).repeat_interleave(per_class)
    return FewShotDataset(centers[labels] + noise * torch.randn(len(labels), 4, generator=g), labels)


def nearest_mean(sx, sy, qx):
    means = torch.stack([sx[sy == c].mean(0) for c in range(int(sy.max()) + 1)])
    return -torch.cdist(qx, means)


def test_ci_formula():
    values = torch.tensor([0.2, 0.4, 0.9, 1.0, 0.5], dtype=torch.float64)
    mean = values.mean()
    std = math.sqrt(((values - mean) ** 2).sum() / (len(values) - 1))
    assert confidence_interval(values) == pytest.approx(1.96 * std / math.sqrt(5))


def test_perfect_and_chance_learners():
    ds = clustered()
    perfect = evaluate(nearest_mean, ds, ways=5, shots=1, queries=3, episodes=50)
    assert perfect.accuracy == 1.0 and perfect.ci95 == 0.0 and len(perfect.per_episode) == 50
    rand = evaluate(lambda sx, sy, qx: torch.randn(len(qx), 5), ds, 5, 1, 3, episodes=400)
    assert abs(rand.accuracy - 0.2) < 3 * rand.ci95 + 0.02
    assert rand.to_dict()["accuracy"] == rand.mean and rand.to_dict()["episodes"] == 400


def test_same_seed_same_numbers():
    ds = clustered(noise=4.0)
    a = evaluate(nearest_mean, ds, 5, 1, 5, episodes=60, seed=3)
    b = evaluate(nearest_mean, ds, 5, 1, 5, episodes=60, seed=3, batch_size=16)
    c = evaluate(nearest_mean, ds, 5, 1, 5, episodes=60, seed=4)
    assert a.per_episode == b.per_episode and (a.mean, a.ci95) == (b.mean, b.ci95)
    assert a.per_episode != c.per_episode
    assert 0.3 < a.accuracy < 1.0


def test_per_episode_accuracy_matches_hand_count():
    ds = clustered(noise=4.0)
    res = evaluate(nearest_mean, ds, 3, 2, 4, episodes=10, seed=1)
    manual = []
    for ep in EpisodeSampler(ds, 3, 2, 4, seed=1).episodes(10):
        pred = nearest_mean(ep.support_x[0], ep.support_y[0], ep.query_x[0]).argmax(1)
        manual.append(sum(int(p == y) for p, y in zip(pred, ep.query_y[0])) / len(pred))
    assert res.per_episode == pytest.approx(manual)


def test_variable_ways_evaluation():
    res = evaluate(nearest_mean, clustered(), ways=(2, 5), shots=(1, 3), queries=2, episodes=20)
    assert res.accuracy == 1.0 and res.episodes == 20


def test_regression_reports_mse():
    family = get_dataset("sinusoid")
    zero = evaluate(lambda sx, sy, qx: torch.zeros(len(qx), 1), family, 1, 5, 10, episodes=200)
    assert zero.metric == "mse"
    # E[(A sin(x - phase))^2] with A ~ U[0.1, 5]: E[A^2] / 2 ~= 4.2 (x spans ~1.6 periods)
    assert 3.2 < zero.mean < 5.2
    with pytest.raises(AttributeError, match="mse"):
        _ = zero.accuracy


def test_algorithm_objects_are_adapted_and_restored():
    calls = []

    class Learner(torch.nn.Module):
        def adapt(self, sx, sy):
            calls.append(self.training)
            return lambda qx: nearest_mean(sx, sy, qx)

    learner = Learner().train()
    res = evaluate_episodes(learner, EpisodeSampler(clustered(), 5, 1, 2).episodes(3))
    assert res.accuracy == 1.0 and calls == [False] * 3 and learner.training


def test_rejects_non_learners():
    with pytest.raises(TypeError, match="adapt"):
        evaluate(42, clustered(), 5, 1, 1, episodes=2)
