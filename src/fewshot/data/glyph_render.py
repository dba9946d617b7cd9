"""Glyph rasterisation: the DejaVu font files, FreeType renders of one character, and the
bilinear resampling that places (and later distorts) those renders on a square canvas.

Only elementwise IEEE arithmetic, so the same fonts and FreeType give the same bits on every machine.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont, features

FACES = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSansMono")
_GLYPH_EXTENT = 0.78  # the longer side of a normalised glyph, as a fraction of the canvas
_MAX_UPSCALE = 2.2  # small glyphs (dots, dashes) are enlarged at most this much


def font_path(face: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{face}.ttf"


def fonts_id() -> str:
    """What the renders depend on besides the options: the font files and the rasteriser."""
    sizes = ",".join(str(font_path(f).stat().st_size) for f in FACES)
    return f"{sizes};pillow={PIL.__version__};freetype={features.version('freetype2')}"


@functools.cache
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(face)), size, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def code_points(face: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(font_path(face)), lazy=True) as font:
        return frozenset(font.getBestCmap())


def render(codepoint: int, face: str, canvas: int) -> np.ndarray | None:
    """The glyph's ink, tightly cropped: [h, w] float32 in [0, 1] (None if blank), drawn at
    the font size that makes capital letters about 0.95 ``canvas`` tall."""
    size = _font_size(canvas)
    image = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(image).text((1.5 * size, 1.5 * size), chr(codepoint), fill=255, font=_font(face, size), anchor="mm")
    box = image.getbbox()
    return None if box is None else np.asarray(image.crop(box), dtype=np.float32) * np.float32(1 / 255)


def _font_size(canvas: int) -> int:
    return round(1.3 * canvas)


def fit_scale(ink: np.ndarray, canvas: int) -> float:
    """Scale that maps the glyph's longer side to ``_GLYPH_EXTENT`` of the canvas, enlarging
    small glyphs (dots, dashes) at most ``_MAX_UPSCALE`` times their natural size."""
    return min(_GLYPH_EXTENT * canvas / max(ink.shape), _MAX_UPSCALE * canvas / _font_size(canvas))


def warp(inks: list[np.ndarray], which: np.ndarray, inverse: np.ndarray, offset: np.ndarray, canvas: int) -> np.ndarray:
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


def place(inks: list[np.ndarray], canvas: int) -> np.ndarray:
    """Each glyph centred and scaled by ``fit_scale`` into a canvas, undistorted: [n, canvas, canvas]."""
    out = []
    for first in range(0, len(inks), 64):
        part = inks[first : first + 64]
        inverse = np.zeros((len(part), 2, 2))
        inverse[:, 0, 0] = inverse[:, 1, 1] = [1 / fit_scale(ink, canvas) for ink in part]
        out.append(warp(part, np.arange(len(part)), inverse, np.zeros((len(part), 2, 1, 1)), canvas))
    return np.concatenate(out)
