"""Which characters are glyph classes: the code points of ``BLOCKS`` that DejaVu Sans draws,
less near-empty glyphs and near-duplicates of an earlier class (compared on small renders).

The selection depends neither on the image size nor on the seed.
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np
from PIL import Image, ImageFilter

from fewshot.data.glyph_render import FACES, code_points, place, render

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
        ink = render(cp, FACES[0], _SELECT_CANVAS)
        if ink is not None:
            codes.append(cp)
            inks.append(ink)
    placed = place(inks, _SELECT_CANVAS)  # [M, 64, 64]
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


def _candidates() -> list[int]:
    """Code points of BLOCKS that DejaVu Sans maps and that are base characters: letters,
    digits and symbols without a canonical decomposition (no precomposed accents), no
    modifier letters, marks, punctuation or spaces."""
    cmap = code_points(FACES[0])
    out = []
    for lo, hi in BLOCKS:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            category = unicodedata.category(ch)
            if cp in cmap and category[0] in "LNS" and category != "Lm" and not unicodedata.decomposition(ch):
                out.append(cp)
    return out
