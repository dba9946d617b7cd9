"""image-folder: class trees, miniImageNet-style CSV splits, the lazy dataset, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fewshot.data import EpisodeSampler, get_dataset, image_folder
from fewshot.data.image_folder import LazyImageFolder, load_image_folder

COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "emu": (30, 30, 200)}


def picture(colour: tuple[int, int, int], i: int, size: tuple[int, int] = (60, 40)) -> Image.Image:
    """A flat colour with a brighter band whose place depends on ``i`` (non-square on purpose)."""
    array = np.empty((size[1], size[0], 3), dtype=np.uint8)
    array[:] = colour
    array[:, 5 * i : 5 * i + 4] = 255
    return Image.fromarray(array)


def make_tree(root: Path, per_class: int = 4) -> Path:
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            picture(colour, i).save(root / name / f"{name}_{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEWSHOT_CACHE", str(cache))
    return cache


def test_class_tree(tmp_path):
    root = make_tree(tmp_path / "tree")
    (root / "notes.md").write_text("files beside the class folders are ignored")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")  # hidden files too
    ds = load_image_folder(root)
    assert ds.classes == ["cat", "dog", "emu"]
    assert ds.data.shape == (12, 3, 84, 84) and ds.data.dtype == torch.uint8
    assert ds.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.preprocessing == {
        "image_size": 84, "channels": 3, "inverted": False, "resample": "lanczos",
        "normalisation": "none", "range": [0.0, 1.0],
    }  # fmt: skip
    x, y = ds[5]
    assert y == 1 and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert abs(float(x[1].median()) - 200 / 255) < 0.05  # the dog is green

    grey = load_image_folder(root, channels=1, image_size=32)
    assert grey.data.shape == (12, 1, 32, 32) and grey.preprocessing["channels"] == 1


def test_split_folders_and_registry(tmp_path):
    make_tree(tmp_path / "train", per_class=2)
    make_tree(tmp_path / "test", per_class=3)
    assert len(get_dataset("image-folder", root=tmp_path, split="train", image_size=16)) == 6
    assert len(get_dataset("image-folder", root=tmp_path, split="test", image_size=16)) == 9


def test_csv_splits(tmp_path):
    (tmp_path / "images").mkdir()
    rows = {"train": [], "test": []}
    for n, (name, colour) in enumerate(COLOURS.items()):
        for i in range(3):
            picture(colour, i).save(tmp_path / "images" / f"n0{n}_{i}.jpg")
            rows["test" if name == "emu" else "train"].append(f"n0{n}_{i}.jpg,n0{n}")
    for split, lines in rows.items():
        (tmp_path / f"{split}.csv").write_text("filename,label\n" + "\n".join(lines) + "\n")
    train = load_image_folder(tmp_path, "train", image_size=16)
    assert train.classes == ["n00", "n01"] and len(train) == 6
    test = load_image_folder(tmp_path, "val", csv=tmp_path / "test.csv", image_size=16)
    assert test.classes == ["n02"] and len(test) == 3

    (tmp_path / "val.csv").write_text("filename,label\nmissing.jpg,n09\n")
    with pytest.raises(FileNotFoundError, match=r"val\.csv:2: image 'missing.jpg' not found"):
        load_image_folder(tmp_path, "val")
    (tmp_path / "val.csv").write_text("name,class\nn00_0.jpg,n00\n")
    with pytest.raises(ValueError, match="expected a header line 'filename,label'"):
        load_image_folder(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="split CSV file not found"):
        load_image_folder(tmp_path, csv=tmp_path / "nope.csv")


def test_lazy_reads_files_and_matches_eager(tmp_path):
    root = make_tree(tmp_path / "tree", per_class=6)
    eager = load_image_folder(root, image_size=20)
    lazy = load_image_folder(root, image_size=20, lazy=True)
    assert isinstance(lazy, LazyImageFolder)
    assert len(lazy) == 18 and lazy.num_classes == 3 and lazy.classes == eager.classes
    assert torch.equal(lazy.labels, eager.labels) and lazy.preprocessing == eager.preprocessing
    x, y = lazy[7]
    assert torch.equal(x, eager[7][0]) and y == eager[7][1]
    a = EpisodeSampler(eager, ways=3, shots=2, queries=3, seed=4).sample()
    b = EpisodeSampler(lazy, ways=3, shots=2, queries=3, seed=4).sample()
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_y, b.query_y)


def test_decoded_once_and_rebuilt_when_files_change(tmp_path, fresh_cache, monkeypatch):
    root = make_tree(tmp_path / "tree")
    first = load_image_folder(root, image_size=16)
    with monkeypatch.context() as patch:
        patch.setattr(image_folder, "read_image", lambda *a, **k: pytest.fail("decoded again"))
        assert torch.equal(load_image_folder(root, image_size=16).data, first.data)
    picture((0, 0, 0), 0).save(root / "cat" / "cat_0.jpg")  # rewritten file: new cache entry
    changed = load_image_folder(root, image_size=16)
    assert not torch.equal(changed.data[0], first.data[0])
    assert len(list(fresh_cache.glob("*.safetensors"))) == 2


def test_bad_input(tmp_path, fresh_cache):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class folders"):
        load_image_folder(tmp_path)
    root = make_tree(tmp_path / "tree")
    (root / "fox").mkdir()
    with pytest.raises(ValueError, match=r"fox: empty class folder"):
        load_image_folder(root)
    (root / "fox").rmdir()
    (root / "dog" / "labels.txt").write_text("not a picture")
    with pytest.raises(ValueError, match=r"dog/labels\.txt: not an image file"):
        load_image_folder(root)
    (root / "dog" / "labels.txt").unlink()
    (root / "dog" / "dog_2.jpg").write_bytes(b"\xff\xd8\xff truncated jpeg")
    with pytest.raises(ValueError, match=r"dog/dog_2\.jpg: not a readable image"):
        load_image_folder(root)
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())  # nothing half-written
    lazy = load_image_folder(root, lazy=True)  # the lazy dataset fails on access, naming the file
    with pytest.raises(ValueError, match=r"dog_2\.jpg: not a readable image"):
        lazy[6]
    with pytest.raises(ValueError, match="channels must be 1"):
        load_image_folder(root, channels=4)
