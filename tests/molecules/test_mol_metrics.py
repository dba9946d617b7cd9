import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from fewshot.molecules.metrics import average_precision, delta_auprc, mean_ci95, roc_auc


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_scikit_learn(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(5, 300, (1,), generator=g))
    y = (torch.rand(n, generator=g) < 0.3).long()
    y[0], y[1] = 0, 1
    s = torch.rand(n, generator=g) + 0.5 * y
    if seed % 2:  # coarse scores: many ties
        s = (s * 4).round() / 4
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y.numpy(), s.numpy()), abs=1e-12)
    ap = average_precision_score(y.numpy(), s.numpy())
    assert average_precision(s, y) == pytest.approx(ap, abs=1e-12)
    assert delta_auprc(s, y) == pytest.approx(ap - y.float().mean().item(), abs=1e-6)


def test_perfect_and_reversed_rankings():
    y = torch.tensor([0, 0, 1, 1])
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert roc_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert delta_auprc(torch.tensor([0.1, 0.2, 0.8, 0.9]), y) == pytest.approx(0.5)
    assert roc_auc(torch.zeros(4), y) == 0.5


def test_one_class_queries_are_an_error():
    with pytest.raises(ValueError, match="both actives and inactives"):
        roc_auc(torch.rand(3), torch.ones(3))
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        average_precision(torch.rand(3), torch.tensor([0, 1]))


def test_mean_ci95():
    mean, ci = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and ci == pytest.approx(1.96 * torch.tensor([1.0, 2, 3, 4]).std().item() / 2)
    assert mean_ci95([0.3]) == (0.3, 0.0)
