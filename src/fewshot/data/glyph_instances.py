"""Drawing a glyph class's instances: each image its own font face, affine map, elastic wobble,
stroke width, blur and pixel flips, from ``numpy.random.default_rng(seed)`` uniforms only.

Box-downsampled to ``image_size``: bright strokes on a 0 background, one channel, uint8.
"""

from __future__ import annotations

import logging
import math
import time
from typing import cast

import numpy as np
import torch

from fewshot.data.glyph_classes import select_classes
from fewshot.data.glyph_render import FACES, code_points, fit_scale, render, warp

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
_UNIFORMS = 11 + 2 * 5 * 5  # per image: face, affine (6), stroke, blur (2), flip rate, 5x5 wobble (x, y)
_DRAW_SIZE = 56  # px: instances are drawn at least this large (an integer multiple of
# image_size), then box-downsampled; stroke and blur sizes are relative to it


def generate(image_size: int, instances: int, seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Every class's images, ``data [C*I, 1, H, W]`` uint8, and ``codepoints [C]``."""
    start = time.perf_counter()
    codepoints = select_classes()
    rng = np.random.default_rng(seed)
    u = rng.random((len(codepoints), instances, _UNIFORMS))  # every random number of an image
    data = np.empty((len(codepoints), instances, image_size, image_size), dtype=np.uint8)
    hi = _supersample(image_size) * image_size
    chunk = max(1, 2**20 // (instances * hi * hi))  # classes per batch: ~4 MB per float32 image array
    for first in range(0, len(codepoints), chunk):
        inks: list[np.ndarray] = []
        which: list[np.ndarray] = []
        for c, cp in enumerate(codepoints[first : first + chunk]):
            renders = [r for r in (render(cp, f, hi) for f in FACES if cp in code_points(f)) if r is not None]
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
    fit = np.array([fit_scale(ink, hi) for ink in inks])[which]  # [n]
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
    x = warp(inks, which, inverse, offset, hi)  # [n, hi, hi]

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
    small = cast(np.ndarray, sum(x[:, i::s, j::s] for i in range(s) for j in range(s)))  # [n, H, W] box downsampling
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
