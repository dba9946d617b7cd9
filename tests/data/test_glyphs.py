import pytest
import torch

from fewshot.data import get_dataset
from fewshot.data.cache import cache_dir
from fewshot.data.glyphs import load_glyphs, select_classes
from fewshot.engine.evaluate import evaluate

SPLITS = ("train", "val", "test", "trainval")


@pytest.fixture(scope="module")
def glyphs():
    """Every split of the default dataset (generated once into the session's test cache)."""
    return {split: get_dataset("glyphs", split=split) for split in SPLITS}


def test_splits_partition_the_classes(glyphs):
    names = {split: set(glyphs[split].classes) for split in SPLITS}
    assert not names["train"] & names["val"] and not names["train"] & names["test"] and not names["val"] & names["test"]
    assert names["trainval"] == names["train"] | names["val"]
    total = sum(len(names[s]) for s in ("train", "val", "test"))
    assert total >= 1000
    for split, fraction in (("train", 0.60), ("val", 0.15), ("test", 0.25)):
        assert len(names[split]) == pytest.approx(fraction * total, abs=1)
    for split, ds in glyphs.items():
        assert ds.data.shape == (20 * ds.num_classes, 1, 28, 28) and ds.data.dtype == torch.uint8
        assert torch.equal(torch.bincount(ds.labels), torch.full((ds.num_classes,), 20))
        assert ds.preprocessing["image_size"] == 28 and ds.preprocessing["channels"] == 1
        assert ds.preprocessing["inverted"]  # dark-on-light drawings are inverted to match
        assert ds.name == f"glyphs/{split}"


def test_look_alike_characters_are_one_class():
    kept = set(select_classes())
    assert ord("A") in kept and ord("\u0391") not in kept and ord("\u0410") not in kept  # Greek, Cyrillic A
    assert sum(ord(c) in kept for c in "oO0\u043e\u03bf") == 1  # o, O, zero, Cyrillic o, Greek omicron
    assert len(kept) >= 1000


def test_images_have_bright_strokes_on_dark_background(glyphs):
    for split in ("train", "val", "test"):
        x = glyphs[split].data.flatten(1)  # [n, 784]
        assert (x > 127).sum(1).min() >= 8, "a near-empty image"
        assert int(x.amax(1).min()) == 255
        assert float((x < 32).float().mean()) > 0.6  # mostly background


def test_instances_of_a_class_differ(glyphs):
    ds = glyphs["test"]
    x = ds.data.float().view(ds.num_classes, 20, -1)  # [C, 20, 784]
    distance = torch.cdist(x, x)  # [C, 20, 20]
    off_diagonal = distance[:, ~torch.eye(20, dtype=torch.bool)]
    assert off_diagonal.min() > 100  # no two drawings (nearly) alike


def test_raw_pixel_nearest_neighbour_is_above_chance_but_far_from_perfect(glyphs):
    def nearest_neighbour(support_x, support_y, query_x):  # [N*K, 1, H, W], [N*K], [Q, 1, H, W]
        distance = torch.cdist(query_x.flatten(1), support_x.flatten(1))  # [Q, N*K]
        nearest = distance.new_full((len(query_x), int(support_y.max()) + 1), float("inf"))
        return -nearest.scatter_reduce(1, support_y.expand_as(distance), distance, "amin")  # [Q, N]

    result = evaluate(nearest_neighbour, glyphs["test"], ways=5, shots=1, queries=5, episodes=300, seed=0)
    print(f"raw-pixel 1-NN, glyphs test split, 5-way 1-shot: {result}")
    assert 0.35 < result.accuracy < 0.90


def test_generation_is_deterministic(tmp_path, monkeypatch):
    def generate(folder, seed=3, reselect=False):
        monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / folder))
        if reselect:
            select_classes.cache_clear()  # redo the class selection too
        return load_glyphs(split="val", image_size=12, instances=3, seed=seed)

    a, b = generate("a"), generate("b", reselect=True)
    assert torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels) and a.classes == b.classes
    assert len(list(cache_dir().glob("glyphs-*.safetensors"))) == 1
    again = generate("a")  # read back from the cache
    assert torch.equal(again.data, a.data)
    assert a.data.shape == (3 * a.num_classes, 1, 12, 12)
    assert not torch.equal(generate("c", seed=4).data, a.data)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="split"):
        load_glyphs(split="everything")
    with pytest.raises(ValueError, match="image_size"):
        load_glyphs(image_size=2)
    with pytest.raises(ValueError, match="unknown dataset 'glyphs' option.s. colour; valid: image_size, instances"):
        get_dataset("glyphs", split="train", colour=True)
