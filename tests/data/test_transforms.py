import pytest
import torch

from fewshot.data.episode import Episode
from fewshot.data.transforms import augment_episode, compose, random_affine, random_crop, random_flip


def _episode(seed: int = 0, b: int = 2, n: int = 3, k: int = 2, q: int = 4) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(
        support_x=torch.rand(b, n * k, 1, 12, 10, generator=g),
        support_y=torch.arange(n).repeat_interleave(k).repeat(b, 1),
        query_x=torch.rand(b, n * q, 1, 12, 10, generator=g),
        query_y=torch.arange(n).repeat_interleave(q).repeat(b, 1),
    )


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


TRANSFORMS = {
    "flip": random_flip(),
    "crop": random_crop(padding=2),
    "affine": random_affine(degrees=20, translate=0.1, scale=(0.8, 1.2), shear=10),
    "compose": compose(random_crop(padding=1), random_flip(), random_affine(degrees=15)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_shape_dtype_and_labels_preserved(name):
    episode = _episode()
    out = augment_episode(episode, TRANSFORMS[name], _gen())
    for field in ("support_x", "query_x"):
        before, after = getattr(episode, field), getattr(out, field)
        assert after.shape == before.shape and after.dtype == before.dtype
        assert not torch.equal(after, before)
    assert out.support_y is episode.support_y and out.query_y is episode.query_y


@pytest.mark.parametrize("name", TRANSFORMS)
def test_deterministic_from_generator(name):
    episode = _episode()
    a = augment_episode(episode, TRANSFORMS[name], _gen(7))
    b = augment_episode(episode, TRANSFORMS[name], _gen(7))
    c = augment_episode(episode, TRANSFORMS[name], _gen(8))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.support_x, c.support_x)


def test_zero_magnitudes_are_identity():
    x = _episode().support_x
    affine = random_affine(degrees=0, translate=0, scale=(1, 1), shear=0)(x, _gen())
    torch.testing.assert_close(affine, x, atol=1e-5, rtol=0)
    assert torch.equal(random_crop(padding=0)(x, _gen()), x)
    assert torch.equal(random_flip(p=0)(x, _gen()), x)


def test_certain_flip_twice_is_identity():
    x = _episode().query_x
    flip = random_flip(p=1.0)
    once = flip(x, _gen())
    assert torch.equal(once, x.flip(-1))
    assert torch.equal(flip(once, _gen()), x)


def test_crop_is_a_shift_with_fill():
    x = torch.arange(1.0, 26.0).view(1, 1, 5, 5)
    out = random_crop(padding=1)(x.expand(64, 1, 5, 5), _gen())  # [64, 1, 5, 5]
    shifts = set()
    for image in out:
        found = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if torch.equal(image, _shift(x[0], dy, dx))]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) == 9  # every offset occurs


def _shift(image, dy, dx):
    """``image [C, H, W]`` moved by (dy, dx) pixels, zeros filling in."""
    padded = torch.nn.functional.pad(image, (1, 1, 1, 1))
    h, w = image.shape[-2:]
    return padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def test_affine_moves_a_dot_as_specified():
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 6] = 1  # two pixels right of the centre
    rotated = random_affine(degrees=(90, 90))(x, _gen())  # counter-clockwise on screen: above the centre
    assert rotated[0, 0, 2, 4] == pytest.approx(1, abs=1e-5) and rotated.sum() == pytest.approx(1, abs=1e-4)
    x = torch.zeros(1, 1, 10, 10)
    x[..., 3, 3] = 1
    moved = random_affine(translate=(0.2, 0.2))(x, _gen())  # 2 px down and right
    assert moved[0, 0, 5, 5] == pytest.approx(1, abs=1e-5)


def test_query_false_leaves_query_untouched():
    episode = _episode()
    out = augment_episode(episode, random_flip(p=1.0), _gen(), query=False)
    assert out.query_x is episode.query_x
    assert torch.equal(out.support_x, episode.support_x.flip(-1))


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="padding"):
        random_crop(padding=-1)
    with pytest.raises(ValueError, match="scale"):
        random_affine(scale=(0, 1))
    with pytest.raises(ValueError, match="p must"):
        random_flip(p=2)
    with pytest.raises(ValueError, match=r"\[..., C, H, W\]"):
        random_flip()(torch.zeros(4, 4), _gen())
    with pytest.raises(TypeError, match="floating"):
        random_affine(degrees=5)(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), _gen())


def test_uint8_flip_and_crop_keep_dtype():
    x = torch.randint(0, 256, (3, 1, 6, 6), dtype=torch.uint8, generator=_gen())
    assert random_flip()(x, _gen()).dtype == torch.uint8
    assert random_crop(padding=2)(x, _gen()).dtype == torch.uint8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    episode = _episode()
    transform = TRANSFORMS["compose"]
    cpu = augment_episode(episode, transform, _gen(3))
    gpu = augment_episode(episode.to("cuda"), transform, _gen(3))
    assert gpu.support_x.is_cuda
    torch.testing.assert_close(gpu.support_x.cpu(), cpu.support_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(gpu.query_x.cpu(), cpu.query_x, atol=1e-5, rtol=0)
