import numpy as np
import pytest
import torch

from fewshot.data import FewShotDataset, get_dataset
from fewshot.data.cache import cache_dir, cache_key, cached
from fewshot.registry import DATASETS


def test_arrays_with_string_labels():
    ds = FewShotDataset(np.random.rand(6, 3).astype("float32"), ["b", "a", "b", "c", "a", "c"])
    assert ds.classes == ["a", "b", "c"] and ds.num_classes == 3
    assert ds.labels.tolist() == [1, 0, 1, 2, 0, 2]
    x, y = ds[3]
    assert x.shape == (3,) and y == 2


def test_uint8_images_served_as_floats():
    ds = FewShotDataset(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1]), classes=["x", "y"])
    assert ds[0][0].dtype == torch.float32 and ds[0][0].max() == 1.0
    assert ds.gather(torch.tensor([[0, 1]])).shape == (1, 2, 1, 2, 2)
    assert ds.data.dtype == torch.uint8  # storage untouched


def test_length_mismatch_and_bad_labels():
    with pytest.raises(ValueError, match="3 examples but 2 labels"):
        FewShotDataset(torch.zeros(3, 2), [0, 1])
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        FewShotDataset(torch.zeros(2, 2), torch.tensor([0, 5]), classes=["a", "b"])


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="unknown dataset 'nope'; valid names: .*glyphs.*omniglot"):
        get_dataset("nope")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        get_dataset("sinusoid", split="dev")
    assert {"glyphs", "omniglot", "omniglot-runs", "image-folder", "sinusoid"} <= set(DATASETS)


def test_cache_builds_once_and_rebuilds_damaged_files():
    builds = []

    def build():
        builds.append(1)
        return {"x": torch.arange(4)}, {"classes": ["a"]}

    key = cache_key("test", option=1)
    t, meta = cached(key, build)
    t2, meta2 = cached(key, build)
    assert len(builds) == 1 and torch.equal(t2["x"], torch.arange(4)) and meta2 == {"classes": ["a"]}
    path = cache_dir() / f"{key}.safetensors"
    path.write_bytes(b"garbage")
    t3, _ = cached(key, build)
    assert len(builds) == 2 and torch.equal(t3["x"], torch.arange(4))
    assert not [p for p in cache_dir().iterdir() if p.name.endswith(".tmp")]


def test_failed_build_leaves_nothing():
    def build():
        raise RuntimeError("decode failed")

    key = cache_key("test", option=2)
    with pytest.raises(RuntimeError):
        cached(key, build)
    assert not list(cache_dir().glob(f"*{key}*"))
