"""``glyphs``: the built-in Omniglot-like dataset, rendered from the DejaVu fonts shipped
with matplotlib, so it needs no download.

A class is one Unicode character (letters of a dozen scripts, math operators, arrows,
shapes, dingbats...) that DejaVu Sans really draws; near-empty glyphs and near-duplicates
of an earlier class (Latin ``A`` / Greek ``Alpha`` / Cyrillic ``A``, ``o`` / ``O``...) are
dropped by comparing small renders. Each class has ``instances`` images (20, like
Omniglot), each drawn with its own font face, stroke width, affine distortion, smooth
elastic wobble, blur and pixel flips, then box-downsampled to ``image_size``: bright
strokes on a 0 background, one channel, uint8.

Randomness is only ``numpy.random.default_rng(seed)`` uniforms; glyphs are rasterised by
FreeType (Pillow's basic layout, never raqm) and then distorted with elementwise IEEE
arithmetic only (no BLAS, no vectorised transcendental functions), so a seed gives the
same bytes on every run and machine with the same fonts and FreeType. The result is
cached through :func:`fewshot.data.cache.cached`, keyed by the generator version, the
options, the seed and the font/rasteriser versions. Classes are split train/val/test
(60/15/25%, trainval = train + val) by a hash of their code point, the same for every
seed and image size.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
import unicodedata
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

from fewshot.data.cache import cache_key, cached
from fewshot.data.dataset import FewShotDataset
from fewshot.data.images import preprocessing

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
FACES = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSansMono")
SPLIT_FRACTIONS = {"train": 0.60, "val": 0.15, "test": 0.25}

# Unicode blocks the classes are drawn from (inclusive ranges of code points).
BLOCKS = (
    (0x0021, 0x007E),  # Basic Latin
    (0x0180, 0x024F),  # Latin Extended-B
    (0x0250, 0x02AF),  # IPA Extensions
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x052F),  # Cyrillic (+ Supplement)
    (0x0531, 0x058A),  # Armenian
    (0x05D0, 0x05EA),  # Hebrew letters
    (0x0621, 0x064A),  # Arabic letters (drawn as isolated forms)
    (0x07C0, 0x07FF),  # NKo
    (0x0E80, 0x0EFF),  # Lao
    (0x10A0, 0x10FF),  # Georgian
    (0x1400, 0x167F),  # Unified Canadian Aboriginal Syllabics
    (0x1680, 0x169F),  # Ogham
    (0x2100, 0x214F),  # Letterlike Symbols
    (0x2190, 0x21FF),  # Arrows
    (0x2200, 0x22FF),  # Mathematical Operators
    (0x2300, 0x23FF),  # Miscellaneous Technical
    (0x2500, 0x257F),  # Box Drawing
    (0x25A0, 0x25FF),  # Geometric Shapes
    (0x2600, 0x26FF),  # Miscellaneous Symbols
    (0x2700, 0x27BF),  # Dingbats
    (0x2A00, 0x2AFF),  # Supplemental Mathematical Operators
    (0x2B00, 0x2BFF),  # Miscellaneous Symbols and Arrows
    (0x2D30, 0x2D7F),  # Tifinagh
    (0xA4D0, 0xA4FF),  # Lisu
)

# Class selection works on fixed-size renders, independent of image_size and seed.
_SELECT_CANVAS = 64  # px, the normalised glyph render
_DISTANCE = 0.3  # relative squared distance below which a later glyph duplicates a kept one
_SIMILARITY = 0.88  # ... or cosine similarity of coarse thumbnails above which it does
_MIN_INK = 0.04  # mean ink of the 64 px render below which a glyph counts as near-empty
_GLYPH_EXTENT = 0.78  # the longer side of a normalised glyph, as a fraction of the canvas
_MAX_UPSCALE = 2.2  # small glyphs (dots, dashes) are enlarged at most this much
_UNIFORMS = 11 + 2 * 5 * 5  # per image: face, affine (6), stroke, blur (2), flip rate, 5x5 wobble (x, y)
_DRAW_SIZE = 56  # px: instances are drawn at least this large (an integer multiple of
# image_size), then box-downsampled; stroke and blur sizes are relative to it


def load_glyphs(
    root=None, split: str = "train", *, image_size: int = 28, instances: int = 20, seed: int = 0
) -> FewShotDataset:
    """The ``glyphs`` dataset for ``split`` (train, val, test or trainval).

    ``root`` is unused: the images are generated, then cached in ``$FEWSHOT_CACHE``.
    The returned dataset has ``data [n, 1, image_size, image_size]`` (uint8) and a
    ``preprocessing`` dict describing how the images were made.
    """
    if split not in (*SPLIT_FRACTIONS, "trainval"):
        raise ValueError(f"unknown split {split!r}; valid splits: train, val, test, trainval")
    if not 8 <= image_size <= 256:
        raise ValueError(f"image_size must lie in 8..256, got {image_size}")
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    key = cache_key(
        "glyphs", version=GENERATOR_VERSION, image_size=image_size, instances=instances, seed=seed, fonts=_fonts_id()
    )
    tensors, _ = cached(key, lambda: _build(image_size, instances, seed))
    codepoints = tensors["codepoints"].tolist()  # [C] every class, in generation order
    members = split_classes(codepoints)[split]  # class indices of this split
    data = tensors["data"].view(len(codepoints), instances, 1, image_size, image_size)[members]
    dataset = FewShotDataset(
        data.reshape(-1, 1, image_size, image_size),  # [n, 1, H, W] uint8
        torch.arange(len(members)).repeat_interleave(instances),
        classes=[class_name(codepoints[c]) for c in members],
        name=f"glyphs/{split}",
    )
    # Strokes are bright on a dark background, like Omniglot after its inversion: images
    # drawn dark on light (scans, the Omniglot PNGs) are inverted when fed to a learner.
    dataset.preprocessing = preprocessing(image_size, channels=1, inverted=True)
    return dataset


def split_classes(codepoints: list[int]) -> dict[str, list[int]]:
    """Class indices per split: classes ordered by a hash of their code point, then cut
    60/15/25%. The partition does not depend on the seed, the image size or the platform."""
    order = sorted(range(len(codepoints)), key=lambda c: hashlib.sha256(b"glyphs:%d" % codepoints[c]).digest())
    n_train = round(SPLIT_FRACTIONS["train"] * len(order))
    n_val = round(SPLIT_FRACTIONS["val"] * len(order))
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    parts["trainval"] = parts["train"] + parts["val"]
    return {name: sorted(part) for name, part in parts.items()}


def class_name(codepoint: int) -> str:
    return f"U+{codepoint:04X} {unicodedata.name(chr(codepoint), '')}".rstrip()


# --------------------------------------------------------------------------- fonts


def font_path(face: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{face}.ttf"


def _fonts_id() -> str:
    """What the renders depend on besides the options: the font files and the rasteriser."""
    sizes = ",".join(str(font_path(f).stat().st_size) for f in FACES)
    return f"{sizes};pillow={PIL.__version__};freetype={features.version('freetype2')}"


@functools.cache
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(face)), size, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def _cmap(face: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(font_path(face)), lazy=True) as font:
        return frozenset(font.getBestCmap())


def _candidates() -> list[int]:
    """Code points of BLOCKS that DejaVu Sans maps and that are base characters: letters,
    digits and symbols without a canonical decomposition (no precomposed accents), no
    modifier letters, marks, punctuation or spaces."""
    cmap = _cmap(FACES[0])
    out = []
    for lo, hi in BLOCKS:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            category = unicodedata.category(ch)
            if cp in cmap and category[0] in "LNS" and category != "Lm" and not unicodedata.decomposition(ch):
                out.append(cp)
    return out


def _render(codepoint: int, face: str, canvas: int) -> np.ndarray | None:
    """The glyph's ink, tightly cropped: [h, w] float32 in [0, 1] (None if blank), drawn at
    the font size that makes capital letters about 0.95 ``canvas`` tall."""
    size = _font_size(canvas)
    image = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(image).text((1.5 * size, 1.5 * size), chr(codepoint), fill=255, font=_font(face, size), anchor="mm")
    box = image.getbbox()
    return None if box is None else np.asarray(image.crop(box), dtype=np.float32) * np.float32(1 / 255)


def _font_size(canvas: int) -> int:
    return round(1.3 * canvas)


def _fit(ink: np.ndarray, canvas: int) -> float:
    """Scale that maps the glyph's longer side to ``_GLYPH_EXTENT`` of the canvas, enlarging
    small glyphs (dots, dashes) at most ``_MAX_UPSCALE`` times their natural size."""
    return min(_GLYPH_EXTENT * canvas / max(ink.shape), _MAX_UPSCALE * canvas / _font_size(canvas))


def _warp(
    inks: list[np.ndarray], which: np.ndarray, inverse: np.ndarray, offset: np.ndarray, canvas: int
) -> np.ndarray:
    """Bilinear resampling of glyph crops into ``canvas`` px squares, all images at once.

    Output pixel centre ``p`` (relative to the canvas centre) reads source point
    ``crop centre + inverse @ (p + offset)``; outside the crop is background.
    which: [n] crop per image; inverse: [n, 2, 2]; offset: [n, 2, canvas, canvas] (x, y;
    or broadcastable) -> [n, canvas, canvas] float32 in [0, 1]. Only elementwise IEEE
    arithmetic, hence the same bits on every machine.
    """
    shapes = np.array([ink.shape for ink in inks])  # [m, 2]
    h = shapes[which, 0, None, None].astype(np.float32)  # [n, 1, 1]
    w = shapes[which, 1, None, None].astype(np.float32)
    # Every crop padded with zeros: one row/column before it, two after (bilinear reads x0, x0 + 1).
    stack = np.zeros((len(inks), int(shapes[:, 0].max()) + 3, int(shapes[:, 1].max()) + 3), dtype=np.float32)
    for k, ink in enumerate(inks):
        stack[k, 1 : ink.shape[0] + 1, 1 : ink.shape[1] + 1] = ink
    centre = np.arange(canvas, dtype=np.float32) + np.float32(0.5 - canvas / 2)  # [canvas]
    ox = centre[None, None, :] + offset[:, 0]  # [n, canvas, canvas]
    oy = centre[None, :, None] + offset[:, 1]
    a = inverse.astype(np.float32)[:, :, :, None, None]  # [n, 2, 2, 1, 1]
    u = np.clip((w * 0.5 - 0.5) + (a[:, 0, 0] * ox + a[:, 0, 1] * oy), -1, w)  # source x in crop pixels
    v = np.clip((h * 0.5 - 0.5) + (a[:, 1, 0] * ox + a[:, 1, 1] * oy), -1, h)
    x0, y0 = np.floor(u), np.floor(v)
    fx, fy = u - x0, v - y0
    width = stack.shape[2]
    i = which[:, None, None] * stack[0].size + (y0.astype(np.int64) + 1) * width + (x0.astype(np.int64) + 1)
    flat = stack.ravel()
    top = flat[i] * (1 - fx) + flat[i + 1] * fx  # [n, canvas, canvas]
    bottom = flat[i + width] * (1 - fx) + flat[i + width + 1] * fx
    return top * (1 - fy) + bottom * fy


def _place(inks: list[np.ndarray], canvas: int) -> np.ndarray:
    """Each glyph centred and scaled by ``_fit`` into a canvas, undistorted: [n, canvas, canvas]."""
    out = []
    for first in range(0, len(inks), 64):
        part = inks[first : first + 64]
        inverse = np.zeros((len(part), 2, 2))
        inverse[:, 0, 0] = inverse[:, 1, 1] = [1 / _fit(ink, canvas) for ink in part]
        out.append(_warp(part, np.arange(len(part)), inverse, np.zeros((len(part), 2, 1, 1)), canvas))
    return np.concatenate(out)


# --------------------------------------------------------------------------- classes


@functools.lru_cache(maxsize=1)
def select_classes() -> tuple[int, ...]:
    """The code points kept as classes, in block order.

    Drops glyphs whose normalised 64 px render is nearly empty, then, greedily in block
    order, every glyph too close to a kept one: relative squared distance of lightly
    blurred 32x32 renders below ``_DISTANCE``, or cosine similarity of heavily blurred,
    centred 16x16 thumbnails above ``_SIMILARITY`` (same overall shape).
    """
    codes, inks = [], []
    for cp in _candidates():
        ink = _render(cp, FACES[0], _SELECT_CANVAS)
        if ink is not None:
            codes.append(cp)
            inks.append(ink)
    placed = _place(inks, _SELECT_CANVAS)  # [M, 64, 64]
    full = placed.mean(axis=(1, 2)) >= _MIN_INK  # [M]
    codes = [cp for cp, keep in zip(codes, full) if keep]
    images = [Image.fromarray(np.rint(255 * p).astype(np.uint8)) for p in placed[full]]
    a = np.stack([_thumbnail(im, 1.5, 32) for im in images])  # [M, 32*32]
    energy = (a * a).sum(axis=1)  # [M]
    distance = (energy[:, None] + energy[None, :] - 2 * a @ a.T) / np.minimum(energy[:, None], energy[None, :])
    b = np.stack([_thumbnail(im, 2.0, 16) for im in images])  # [M, 16*16]
    b -= b.mean(axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    close = (distance < _DISTANCE) | (b @ b.T > _SIMILARITY)  # [M, M]
    kept: list[int] = []
    for i in range(len(codes)):
        if not close[i, kept].any():
            kept.append(i)
    return tuple(codes[i] for i in kept)


def _thumbnail(image: Image.Image, blur: float, size: int) -> np.ndarray:
    small = image.filter(ImageFilter.GaussianBlur(blur)).resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64).ravel() / 255  # [size*size]


# --------------------------------------------------------------------------- instances


def _build(image_size: int, instances: int, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Every class's images, ``data [C*I, 1, H, W]`` uint8, and ``codepoints [C]``."""
    start = time.perf_counter()
    codepoints = select_classes()
    rng = np.random.default_rng(seed)
    u = rng.random((len(codepoints), instances, _UNIFORMS))  # every random number of an image
    data = np.empty((len(codepoints), instances, image_size, image_size), dtype=np.uint8)
    hi = _supersample(image_size) * image_size
    chunk = max(1, 2**20 // (instances * hi * hi))  # classes per batch: ~4 MB per float32 image array
    for first in range(0, len(codepoints), chunk):
        inks, which = [], []
        for c, cp in enumerate(codepoints[first : first + chunk]):
            renders = [r for r in (_render(cp, f, hi) for f in FACES if cp in _cmap(f)) if r is not None]
            face = np.minimum((u[first + c, :, 0] * len(renders)).astype(np.int64), len(renders) - 1)  # [I]
            which.append(len(inks) + face)
            inks += renders
        batch = u[first : first + chunk].reshape(-1, _UNIFORMS)  # [b*I, U]
        images = _distort(inks, np.concatenate(which), batch, image_size)  # [b*I, H, W]
        # Pixel flips (salt and dropout noise) at a rate of up to 2% per image.
        flips = rng.random(images.shape) < 0.02 * batch[:, 10, None, None]
        data[first : first + chunk] = np.where(flips, 255 - images, images).reshape(-1, instances, *images.shape[1:])
    log.info("generated glyphs: %d classes x %d in %.1f s", len(codepoints), instances, time.perf_counter() - start)
    tensors = {
        "data": torch.from_numpy(data.reshape(-1, 1, image_size, image_size)),  # [C*I, 1, H, W]
        "codepoints": torch.tensor(codepoints, dtype=torch.int64),  # [C]
    }
    return tensors, {"version": GENERATOR_VERSION, "seed": seed, "faces": list(FACES)}


def _distort(inks: list[np.ndarray], which: np.ndarray, u: np.ndarray, image_size: int) -> np.ndarray:
    """Drawings of glyph crops ``inks[which]``, each with its own uniforms ``u [n, _UNIFORMS]``:
    affine map, elastic wobble, stroke width, blur, box downsampling and contrast stretch
    (pixel flips come after). -> [n, image_size, image_size] uint8."""
    n, s = len(which), _supersample(image_size)
    hi = s * image_size
    fit = np.array([_fit(ink, hi) for ink in inks])[which]  # [n]
    angle = (30 * u[:, 1] - 15) * (math.pi / 180)  # [n] within +-15 degrees
    shear = 0.5 * u[:, 2] - 0.25
    scale = fit * (0.8 + 0.3 * u[:, 3])
    aspect = 0.88 + 0.24 * u[:, 4]
    # Source -> output is M = R(angle) diag(sx, sy) [[1, shear], [0, 1]]; its inverse, written out:
    cos = np.array([math.cos(t) for t in angle])  # libm, not numpy's vectorised sin/cos
    sin = np.array([math.sin(t) for t in angle])
    sx, sy = scale * aspect, scale / aspect
    inverse = np.empty((n, 2, 2))
    inverse[:, 0, 0] = cos / sx + shear * sin / sy
    inverse[:, 0, 1] = sin / sx - shear * cos / sy
    inverse[:, 1, 0] = -sin / sy
    inverse[:, 1, 1] = cos / sy
    # Offset: minus a translation of up to 10% of the canvas, plus a smooth wobble of up to
    # 3%: the bilinear interpolation of a 5x5 grid of uniform nudges over the canvas.
    shift = (0.2 * u[:, 5:7] - 0.1) * hi  # [n, 2]
    grid = (0.06 * hi * (u[:, 11:].reshape(n, 2, 5, 5) - 0.5)).astype(np.float32)  # [n, 2, 5, 5]
    t = (np.arange(hi, dtype=np.float32) + np.float32(0.5)) * np.float32(4 / hi)  # [hi] grid position
    k = np.minimum(t.astype(np.int64), 3)  # grid cell of each pixel
    f = t - k.astype(np.float32)
    rows = grid[:, :, k] * (1 - f)[:, None] + grid[:, :, k + 1] * f[:, None]  # [n, 2, hi, 5]
    wobble = rows[:, :, :, k] * (1 - f) + rows[:, :, :, k + 1] * f  # [n, 2, hi, hi]
    offset = wobble - shift.astype(np.float32)[:, :, None, None]
    x = _warp(inks, which, inverse, offset, hi)  # [n, hi, hi]

    # Stroke width and blur relative to a 56 px drawing: 3x3 steps, binomial blurs of variance 1/2 .. 3/2.
    steps, spread = max(1, round(hi / _DRAW_SIZE)), max(1, round((hi / _DRAW_SIZE) ** 2))
    stroke = u[:, 7, None, None]  # [n, 1, 1]
    thin, thick = x, x
    for _ in range(steps):
        thin, thick = _min3(thin), _max3(thick)
    keep_thin = (stroke < 0.25) & (2 * _ink(thin) > _ink(x))  # thinner, unless most of the glyph vanishes
    x = np.where(keep_thin, thin, np.where(stroke >= 0.7, thick, x))  # or thicker
    level = np.where(u[:, 8] < 0.5, 1 + np.floor(3 * u[:, 9]), 0)  # [n] blur: none or 1..3
    for blur in (1, 2, 3):
        chosen = np.flatnonzero(level == blur)
        x[chosen] = _binomial_blur(x[chosen], 2 * blur * spread)
    small = sum(x[:, i::s, j::s] for i in range(s) for j in range(s))  # [n, H, W] box downsampling
    small = small / small.max(axis=(1, 2), keepdims=True).clip(min=1e-6)  # brightest stroke -> 1
    return np.rint(255 * small).astype(np.uint8)


def _supersample(image_size: int) -> int:
    return -(-_DRAW_SIZE // image_size)  # ceil


def _ink(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=(1, 2), keepdims=True, dtype=np.float64)  # [n, 1, 1]


def _min3(x: np.ndarray) -> np.ndarray:
    """3x3 erosion of [n, H, W] (outside is background)."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    rows = np.minimum(np.minimum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return np.minimum(np.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _max3(x: np.ndarray) -> np.ndarray:
    """3x3 dilation of [n, H, W]."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    rows = np.maximum(np.maximum(p[:, :, :-2], p[:, :, 1:-1]), p[:, :, 2:])
    return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _binomial_blur(x: np.ndarray, order: int) -> np.ndarray:
    """Separable binomial blur of [n, H, W]: ``order / 2`` passes of [1, 2, 1] / 4 in one
    (variance ``order / 4``), outside is background, taps summed in a fixed order."""
    weights = [math.comb(order, j) / 2**order for j in range(order + 1)]
    r = order // 2
    p = np.pad(x, ((0, 0), (r, r), (r, r)))
    h, w = x.shape[1:]
    rows = sum(np.float32(c) * p[:, :, j : j + w] for j, c in enumerate(weights))  # [n, H + 2r, W]
    return sum(np.float32(c) * rows[:, j : j + h] for j, c in enumerate(weights))
