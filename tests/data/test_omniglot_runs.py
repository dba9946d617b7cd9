"""The one-shot runs format, on small runs written here in the release layout."""

from __future__ import annotations

import pytest
import torch
from images import make_runs

from fewshot.data import get_dataset
from fewshot.data.omniglot_runs import load_omniglot_runs
from fewshot.engine import evaluate_episodes


def nearest_neighbour(support_x, support_y, query_x):
    """Logits = minus the squared distance to each support image (one shot per class)."""
    distances = torch.cdist(query_x.flatten(1), support_x.flatten(1)) ** 2  # [Q, N]
    return -distances[:, torch.argsort(support_y)]


def test_runs_become_one_shot_episodes(tmp_path):
    answers = make_runs(tmp_path)
    runs = load_omniglot_runs(tmp_path)
    assert len(runs) == 3 and runs.preprocessing["inverted"] and runs.preprocessing["image_size"] == 28
    episodes = runs.episodes()
    assert len(episodes) == 3
    for episode, expected in zip(episodes, answers.values(), strict=True):
        assert episode.batch_size == 1
        assert episode.support_x.shape == (1, 5, 1, 28, 28) and episode.query_x.shape == (1, 5, 1, 28, 28)
        assert episode.support_y.tolist() == [[0, 1, 2, 3, 4]]
        assert episode.query_y.tolist() == [expected]
        assert episode.support_x.dtype == torch.float32 and 0 <= episode.support_x.min() <= episode.support_x.max() <= 1
        assert episode.support_x[0, 0, 0, 0, 0] == 0  # inverted: the page is dark
    result = evaluate_episodes(nearest_neighbour, episodes)
    assert result.accuracy == 1.0 and result.episodes == 3


def test_registry_and_image_size(tmp_path):
    make_runs(tmp_path, runs=2, ways=4)
    runs = get_dataset("omniglot-runs", root=tmp_path, split="test", image_size=20)
    assert len(runs) == 2 and runs.episodes()[0].query_x.shape == (1, 4, 1, 20, 20)
    with pytest.raises(ValueError, match="only a 'test' split"):
        load_omniglot_runs(tmp_path, split="train")


def test_bad_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="runs folder not found"):
        load_omniglot_runs(tmp_path / "missing")
    with pytest.raises(ValueError, match="no runNN/ folders"):
        load_omniglot_runs(tmp_path)

    make_runs(tmp_path, runs=2)
    (tmp_path / "run02" / "class_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"run02/class_labels\.txt: missing"):
        load_omniglot_runs(tmp_path)

    (tmp_path / "run02" / "class_labels.txt").write_text("run02/test/item01.png run02/training/class09.png\n")
    with pytest.raises(FileNotFoundError, match=r"class_labels\.txt:1: referenced file .*run02/training/class09\.png"):
        load_omniglot_runs(tmp_path)

    (tmp_path / "run02" / "class_labels.txt").write_text("run02/test/item01.png\n")
    with pytest.raises(ValueError, match=r"class_labels\.txt:1: expected '<test image> <training image>'"):
        load_omniglot_runs(tmp_path)

    (tmp_path / "run02" / "class_labels.txt").write_text("run02/test/item01.png run01/training/class01.png\n")
    with pytest.raises(ValueError, match="is not an image of"):
        load_omniglot_runs(tmp_path)

    (tmp_path / "run02" / "class_labels.txt").write_text("run02/test/item01.png run02/training/class01.png\n")
    (tmp_path / "run02" / "test" / "item01.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match=r"run02/test/item01\.png: not a readable image"):
        load_omniglot_runs(tmp_path)
