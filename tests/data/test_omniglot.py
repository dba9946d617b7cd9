"""Omniglot loader and download helper: synthetic releases built here, plus the real data when present."""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from fewshot.data import download, get_dataset, omniglot, omniglot_release
from fewshot.data.omniglot import VAL_ALPHABETS, load_omniglot

# --- synthetic releases ----------------------------------------------------------------


def drawing(char: int, drawer: int) -> bytes:
    """A 105x105 black-on-white PNG (mode 1, like the release): an L shape placed by ``char``."""
    img = Image.new("1", (105, 105), 1)
    draw = ImageDraw.Draw(img)
    x, y = 8 + 9 * (char % 7) + drawer, 8 + 9 * (char // 7 % 7)
    draw.rectangle([x, y, x + 6, y + 40], fill=0)  # vertical bar
    draw.rectangle([x, y + 34, x + 30, y + 40], fill=0)  # foot: no rotational symmetry
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def release(sets: dict[str, dict[str, int]], drawers: int = 4) -> dict[str, dict[str, bytes]]:
    """``{set: {alphabet: n_characters}}`` -> ``{set: {member path: png bytes}}``.

    A character's drawings depend only on its ``Alphabet/characterNN`` key, so a
    character listed in two sets has identical images in both (as in the release).
    """
    ids: dict[str, int] = {}
    out: dict[str, dict[str, bytes]] = {}
    for set_name, alphabets in sets.items():
        out[set_name] = {}
        for alphabet, n in alphabets.items():
            for c in range(1, n + 1):
                key = f"{alphabet}/character{c:02d}"
                ids.setdefault(key, len(ids))
                for d in range(1, drawers + 1):
                    out[set_name][f"{set_name}/{key}/{ids[key]:04d}_{d:02d}.png"] = drawing(ids[key], d)
    return out


def write_zips(root: Path, files: dict[str, dict[str, bytes]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for set_name, members in files.items():
        with zipfile.ZipFile(root / f"{set_name}.zip", "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    return root


def write_folders(root: Path, files: dict[str, dict[str, bytes]]) -> Path:
    for members in files.values():
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return root


SMALL = {
    "images_background": {"Alpha": 3, "Beta": 2, "Hebrew": 2},
    "images_evaluation": {"Gamma": 3},
    "images_background_small1": {"Alpha": 3},
}


@pytest.fixture
def fake_root(tmp_path) -> Path:
    return write_zips(tmp_path / "omniglot", release(SMALL))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEWSHOT_CACHE", str(cache))
    return cache


def test_alphabet_scheme_counts_names_and_preprocessing(fake_root):
    train = load_omniglot(fake_root, "train", splits="alphabet")
    assert train.classes == [f"Alpha/character0{i}" for i in (1, 2, 3)] + ["Beta/character01", "Beta/character02"]
    assert train.data.shape == (5 * 4, 1, 28, 28) and train.data.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [4] * 5
    assert load_omniglot(fake_root, "val", splits="alphabet").classes == ["Hebrew/character01", "Hebrew/character02"]
    assert "Hebrew" in VAL_ALPHABETS
    assert load_omniglot(fake_root, "trainval", splits="alphabet").num_classes == 7
    assert load_omniglot(fake_root, "test", splits="alphabet").classes == [f"Gamma/character0{i}" for i in (1, 2, 3)]
    assert train.preprocessing == {
        "image_size": 28, "channels": 1, "inverted": True, "resample": "lanczos",
        "normalisation": "none", "range": [0.0, 1.0],
    }  # fmt: skip
    # Inverted: the white page is 0, strokes are bright.
    x, _ = train[0]
    assert x.dtype == torch.float32 and x[0, 0, -1] == 0 and x.max() > 0.9 and x.mean() < 0.3


def test_character_in_two_sets_counts_once(fake_root, fresh_cache):
    small = load_omniglot(fake_root, "train", splits="small1")
    full = load_omniglot(fake_root, "trainval", splits="alphabet")
    assert small.classes == [f"Alpha/character0{i}" for i in (1, 2, 3)]
    assert full.num_classes == 7 and len(full) == 28  # Alpha not doubled by the small set
    assert torch.equal(small.data, full.data[: len(small)])
    with pytest.raises(ValueError, match="no val split"):
        load_omniglot(fake_root, "val", splits="small1")
    with pytest.raises(FileNotFoundError, match="images_background_small2"):
        load_omniglot(fake_root, "train", splits="small2")


def test_rotations_are_extra_classes(fake_root):
    plain = load_omniglot(fake_root, "test", splits="alphabet")
    rotated = load_omniglot(fake_root, "test", splits="alphabet", rotations=True)
    assert rotated.num_classes == 4 * plain.num_classes
    assert rotated.classes[:4] == [f"Gamma/character01/rot{r:03d}" for r in (0, 90, 180, 270)]
    base = rotated.data[rotated.labels == 0]  # [4, 1, 28, 28]
    assert torch.equal(base, plain.data[plain.labels == 0])
    for k in (1, 2, 3):
        turned = rotated.data[rotated.labels == k]
        assert torch.equal(turned, torch.rot90(base, k, dims=(-2, -1)))
        assert not torch.equal(turned, base)


def test_unpacked_folders_match_zips(tmp_path, fake_root):
    folders = write_folders(tmp_path / "unpacked", release(SMALL))
    for scheme, split in [("alphabet", "train"), ("alphabet", "test"), ("small1", "trainval")]:
        a = load_omniglot(fake_root, split, splits=scheme)
        b = load_omniglot(folders, split, splits=scheme)
        assert a.classes == b.classes and torch.equal(a.data, b.data) and torch.equal(a.labels, b.labels)


def test_vinyals_split_prefers_root_files(fake_root):
    split_dir = fake_root / "splits" / "vinyals"
    split_dir.mkdir(parents=True)
    lines = ["Alpha/character01/rot000", "Alpha/character01/rot180", "Gamma/character02/rot090"]
    (split_dir / "train.txt").write_text("\n".join(lines) + "\n")
    train = load_omniglot(fake_root, "train")  # vinyals is the default, with rotations
    assert train.classes == ["Alpha/character01/rot000", "Alpha/character01/rot180", "Gamma/character02/rot090"]
    assert len(train) == 12
    assert load_omniglot(fake_root, "train", rotations=False).classes == ["Alpha/character01", "Gamma/character02"]
    # A split file naming characters the root lacks (here: the packaged test split).
    with pytest.raises(FileNotFoundError, match="characters of the vinyals test split"):
        load_omniglot(fake_root, "test")
    (split_dir / "val.txt").write_text("Alpha/character01/rot045\n")
    with pytest.raises(ValueError, match=r"val\.txt:1: expected 'Alphabet/characterNN/rotDDD'"):
        load_omniglot(fake_root, "val")


def test_packaged_vinyals_split_files():
    folder = resources.files("fewshot.data").joinpath("splits")
    counts = {s: len(folder.joinpath("vinyals", f"{s}.txt").read_text().split()) for s in omniglot.SPLITS}
    assert counts == {"train": 4112, "val": 688, "trainval": 4800, "test": 1692}
    assert "MIT License" in folder.joinpath("LICENSE").read_text()


def test_one_cached_decode_serves_every_split(fake_root, fresh_cache, monkeypatch):
    load_omniglot(fake_root, "train", splits="alphabet")
    assert len(list(fresh_cache.glob("*.safetensors"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(omniglot_release, "read_zip_image", no_decoding)
    load_omniglot(fake_root, "test", splits="alphabet", rotations=True)
    load_omniglot(fake_root, "train", splits="small1")
    assert len(list(fresh_cache.glob("*.safetensors"))) == 1
    with pytest.raises(AssertionError, match="decoded again"):  # another size is another entry
        load_omniglot(fake_root, "train", splits="alphabet", image_size=20)


def test_registry_dispatch(fake_root):
    ds = get_dataset("omniglot", root=fake_root, split="val", splits="alphabet", image_size=16)
    assert ds.data.shape == (8, 1, 16, 16) and ds.preprocessing["image_size"] == 16


# --- bad input ---------------------------------------------------------------------------


def test_missing_root_and_missing_sets(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_omniglot(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no Omniglot image sets"):
        load_omniglot(tmp_path)
    with pytest.raises(ValueError, match="needs root"):
        load_omniglot(None)
    only_eval = write_zips(tmp_path / "r", release({"images_evaluation": {"Gamma": 1}}))
    with pytest.raises(FileNotFoundError, match="needs images_background.zip"):
        load_omniglot(only_eval, "train", splits="alphabet")
    with pytest.raises(ValueError, match="unknown Omniglot split scheme"):
        load_omniglot(only_eval, splits="lake")
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot(only_eval, "test", splits="alphabet", image_size=0)


def test_zip_with_unexpected_layout(tmp_path, fresh_cache):
    root = tmp_path / "r"
    files = release({"images_background": {"Alpha": 1}})
    write_zips(root, {"images_background": {k.split("/", 1)[1]: v for k, v in files["images_background"].items()}})
    with pytest.raises(ValueError, match=r"images_background\.zip: unexpected layout: member 'Alpha/character01/"):
        load_omniglot(root, "train", splits="alphabet")
    (root / "images_background.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="images_background.zip: not a valid zip archive"):
        load_omniglot(root, "train", splits="alphabet")
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())


def test_corrupt_image_names_it_and_caches_nothing(tmp_path, fresh_cache):
    files = release({"images_background": {"Alpha": 2}})
    bad = "images_background/Alpha/character02/0001_03.png"
    files["images_background"][bad] = b"\x89PNG\r\n\x1a\n garbage"
    write_zips(tmp_path / "zips", files)
    with pytest.raises(ValueError, match=rf"images_background\.zip:{bad}: not a readable image"):
        load_omniglot(tmp_path / "zips", "train", splits="alphabet")
    write_folders(tmp_path / "folders", files)
    with pytest.raises(ValueError, match=rf"folders/{bad}: not a readable image"):
        load_omniglot(tmp_path / "folders", "train", splits="alphabet")
    (tmp_path / "folders" / "images_background" / "Alpha" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="notes.txt: unexpected layout"):
        load_omniglot(tmp_path / "folders", "train", splits="alphabet")
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())  # nothing half-written


# --- download helper (never touches the network) ------------------------------------------


def test_download_from_local_folder(tmp_path, fake_root, monkeypatch):
    monkeypatch.setattr(download, "fetch", lambda url, dest: pytest.fail("network used"))
    dest = download.download_omniglot(tmp_path / "dl", source=fake_root)
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["images_background.zip", "images_background_small1.zip", "images_evaluation.zip"]
    assert (dest / "images_background.zip").read_bytes() == (fake_root / "images_background.zip").read_bytes()
    assert load_omniglot(dest, "test", splits="alphabet").num_classes == 3
    with pytest.raises(FileNotFoundError, match="source folder not found"):
        download.download_omniglot(tmp_path / "dl2", source=tmp_path / "missing")


def test_download_checks_md5(tmp_path, monkeypatch):
    fetched = []

    def fake_fetch(url: str, dest: Path) -> None:
        fetched.append(url)
        dest.write_bytes(b"fake zip for " + url.encode())

    monkeypatch.setattr(download, "fetch", fake_fetch)
    root = tmp_path / "dl"
    with pytest.raises(ValueError, match=r"images_background\.zip: checksum mismatch"):
        download.download_omniglot(root)
    assert fetched == [download.OMNIGLOT_URL + "images_background.zip"]
    assert not root.exists()  # the bad download was discarded, and the folder made for it

    content = {n: b"fake zip for " + (download.OMNIGLOT_URL + n).encode() for n in download.OMNIGLOT_MD5}
    expected = {n: hashlib.md5(data).hexdigest() for n, data in content.items()}
    monkeypatch.setattr(download, "OMNIGLOT_MD5", expected)
    download.download_omniglot(root)
    assert sorted(p.name for p in root.iterdir()) == ["images_background.zip", "images_evaluation.zip"]
    fetched.clear()
    download.download_omniglot(root)  # present files are kept, not fetched again
    assert fetched == []


# --- the real release (../shared/data/omniglot) -----------------------------------------


@pytest.fixture(scope="session")
def real_vinyals_train(omniglot_root):
    """The first load decodes every set of the real release (once per test session)."""
    return load_omniglot(omniglot_root, "train")


def test_real_vinyals_split(omniglot_root, real_vinyals_train, monkeypatch):
    monkeypatch.setattr(omniglot_release, "read_zip_image", lambda *a, **k: pytest.fail("decoded again"))
    counts = {"train": 4112, "val": 688, "trainval": 4800, "test": 1692}
    for split, n in counts.items():
        ds = real_vinyals_train if split == "train" else load_omniglot(omniglot_root, split)
        assert ds.num_classes == n and len(ds) == 20 * n
        assert torch.bincount(ds.labels).eq(20).all()
    assert real_vinyals_train.classes[:2] == ["Angelic/character01/rot000", "Angelic/character01/rot090"]
    x = real_vinyals_train.data
    assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.uint8
    assert int(x.max()) == 255 and float(x.float().mean()) < 40  # bright strokes on a dark page


def test_real_set_counts(omniglot_root, real_vinyals_train):
    expected = [  # (scheme, split): classes, images of the release tables
        ("alphabet", "trainval", 964, 19280),
        ("alphabet", "test", 659, 13180),
        ("small1", "train", 136, 2720),
        ("small2", "train", 156, 3120),
    ]
    for scheme, split, classes, images in expected:
        ds = load_omniglot(omniglot_root, split, splits=scheme)
        assert (ds.num_classes, len(ds)) == (classes, images), (scheme, split)
    val = load_omniglot(omniglot_root, "val", splits="alphabet")
    assert sorted({c.split("/")[0] for c in val.classes}) == sorted(VAL_ALPHABETS)


def test_real_character_split_shuffles_all_characters_across_alphabets(omniglot_root, real_vinyals_train):
    chars = {}
    for split, n in {"train": 1100, "val": 100, "trainval": 1200, "test": 423}.items():
        ds = load_omniglot(omniglot_root, split, splits="characters")
        assert ds.num_classes == 4 * n and len(ds) == 80 * n  # rotations on, as in the papers' code
        chars[split] = {c.rsplit("/", 1)[0] for c in ds.classes}
        assert len(chars[split]) == n
    assert chars["train"] | chars["val"] == chars["trainval"] and not chars["train"] & chars["val"]
    assert not chars["trainval"] & chars["test"] and len(chars["trainval"] | chars["test"]) == 1623
    alphabets = {split: {c.split("/")[0] for c in names} for split, names in chars.items()}
    assert len(alphabets["test"] & alphabets["train"]) >= 40  # unlike the Vinyals test's (mostly) unseen alphabets
    again = load_omniglot(omniglot_root, "test", splits="characters")
    assert {c.rsplit("/", 1)[0] for c in again.classes} == chars["test"]  # a fixed shuffle


def test_character_split_needs_both_sets(tmp_path):
    root = write_zips(tmp_path / "omniglot", release({"images_background": {"Alpha": 3}}))
    with pytest.raises(FileNotFoundError, match="images_evaluation"):
        load_omniglot(root, "train", splits="characters")


def test_real_unpacked_subset_matches_zip(tmp_path, omniglot_root, real_vinyals_train):
    """Extract a few characters of each set into folders: same pixels as from the zips."""
    root = tmp_path / "unpacked"
    wanted = {"images_background": "Greek/character0", "images_evaluation": "Kannada/character0"}
    for set_name, prefix in wanted.items():
        with zipfile.ZipFile(omniglot_root / f"{set_name}.zip") as z:
            z.extractall(root, [n for n in z.namelist() if n.startswith(f"{set_name}/{prefix}") and n.endswith(".png")])
    reference = load_omniglot(omniglot_root, "trainval", splits="alphabet")
    for split, ref in [("trainval", reference), ("test", load_omniglot(omniglot_root, "test", splits="alphabet"))]:
        ds = load_omniglot(root, split, splits="alphabet")
        assert ds.num_classes == 9 and len(ds) == 180
        for c, name in enumerate(ds.classes):
            assert torch.equal(ds.data[ds.labels == c], ref.data[ref.labels == ref.classes.index(name)])
