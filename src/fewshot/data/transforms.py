"""Training-time augmentation of whole episodes, batched over every image at once.

A transform is a callable ``(x, generator) -> Tensor`` taking images ``x [..., C, H, W]``
on any device and returning the same shape and dtype. Random numbers are drawn on the
CPU from ``generator`` (a CPU ``torch.Generator``) and moved to ``x``'s device, so the
same seed gives the same augmentation everywhere. Factories close over their settings
and ``compose`` chains them, in the optax style::

    augment = compose(random_crop(padding=2), random_affine(degrees=10, scale=(0.9, 1.1)))
    episode = augment_episode(episode, augment, generator)

Evaluation is unaugmented simply by not calling them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fewshot.data.episode import Episode

Transform = Callable[[Tensor, torch.Generator], Tensor]
Range = float | tuple[float, float]


def compose(*transforms: Transform) -> Transform:
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        for transform in transforms:
            x = transform(x, generator)
        return x

    return apply


def random_flip(p: float = 0.5) -> Transform:
    """Mirror each image left-right with probability ``p``."""
    if not 0 <= p <= 1:
        raise ValueError(f"random_flip: p must lie in [0, 1], got {p}")

    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        flat = _images(x, "random_flip")  # [M, C, H, W]
        flip = _uniform(flat.shape[0], generator, x.device) < p  # [M]
        return torch.where(flip[:, None, None, None], flat.flip(-1), flat).view_as(x)

    return apply


def random_crop(padding: int = 4, fill: float = 0.0) -> Transform:
    """Pad each image by ``padding`` pixels of ``fill`` on every side, then crop it back to
    its size at a random offset (a random shift of up to ``padding`` pixels)."""
    if padding < 0:
        raise ValueError(f"random_crop: padding must be >= 0, got {padding}")

    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        flat = _images(x, "random_crop")  # [M, C, H, W]
        m, _, h, w = flat.shape
        padded = F.pad(flat, (padding,) * 4, value=fill)  # [M, C, H+2p, W+2p]
        span = 2 * padding + 1
        offset = (_uniform((m, 2), generator, x.device) * span).long().clamp_(max=span - 1)  # [M, 2]
        rows = offset[:, 0, None] + torch.arange(h, device=x.device)  # [M, H]
        cols = offset[:, 1, None] + torch.arange(w, device=x.device)  # [M, W]
        index = torch.arange(m, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # [M, H, W, C]
        return out.permute(0, 3, 1, 2).reshape(x.shape)

    return apply


def random_affine(
    degrees: Range = 0.0,
    translate: Range = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    shear: Range = 0.0,
    padding_mode: str = "zeros",
) -> Transform:
    """Rotate by an angle in ``degrees`` (``d`` means ``(-d, d)``), shear by an angle in
    ``shear`` degrees (along x), scale by a factor in ``scale`` and shift by a fraction of
    the image size in ``translate`` (``t`` means ``(-t, t)``), about the image centre.

    One ``affine_grid`` + bilinear ``grid_sample`` call over all images; uncovered pixels
    follow ``padding_mode`` ("zeros", "border" or "reflection"). Floating tensors only.
    """
    angle = _symmetric(degrees, "degrees")
    slant = _symmetric(shear, "shear")
    shift = _symmetric(translate, "translate")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"random_affine: scale must be a (low, high) range of positive factors, got {scale}")

    def apply(x: Tensor, generator: torch.Generator) -> Tensor:
        flat = _images(x, "random_affine")  # [M, C, H, W]
        if not flat.is_floating_point():
            raise TypeError(f"random_affine needs floating-point images, got {x.dtype}")
        m, _, h, w = flat.shape
        u = torch.rand(m, 5, generator=generator, dtype=torch.float64)  # [M, 5], stays on the CPU
        a = -torch.deg2rad(angle[0] + (angle[1] - angle[0]) * u[:, 0])  # > 0: counter-clockwise on screen
        k = torch.tan(torch.deg2rad(slant[0] + (slant[1] - slant[0]) * u[:, 1]))
        s = scale[0] + (scale[1] - scale[0]) * u[:, 2]
        t = (shift[0] + (shift[1] - shift[0]) * u[:, 3:5]) * 2  # [M, 2] in normalised units ([-1, 1] spans W)
        # Forward map in pixel units about the centre: A = s R(a) [[1, k], [0, 1]]. The grid
        # needs its inverse in normalised units: D^-1 A^-1 D with D = diag(W/2, H/2).
        cos, sin = torch.cos(a), torch.sin(a)
        inv = (
            torch.stack(  # A^-1 = [[1, -k], [0, 1]] R(-a) / s   [M, 2, 2]
                [torch.stack([cos + k * sin, sin - k * cos], -1), torch.stack([-sin, cos], -1)], -2
            )
            / s[:, None, None]
        )
        d = torch.tensor([w / 2, h / 2], dtype=torch.float64)
        lin = inv * d[None, None, :] / d[None, :, None]  # [M, 2, 2]
        theta = torch.cat([lin, -lin @ t[:, :, None]], -1)  # [M, 2, 3] output -> input
        theta = theta.to(device=x.device, dtype=flat.dtype)
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)  # [M, H, W, 2]
        out = F.grid_sample(flat, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)
        return out.view_as(x)

    return apply


def augment_episode(episode: Episode, transform: Transform, generator: torch.Generator, query: bool = True) -> Episode:
    """A new Episode with ``transform`` applied to ``support_x`` (and to ``query_x`` when
    ``query``); labels are untouched."""
    support_x = transform(episode.support_x, generator)  # [B, N*K, C, H, W]
    query_x = transform(episode.query_x, generator) if query else episode.query_x  # [B, N*Q, C, H, W]
    return dataclasses.replace(episode, support_x=support_x, query_x=query_x)


def _images(x: Tensor, name: str) -> Tensor:
    """``x [..., C, H, W]`` viewed as [M, C, H, W]."""
    if x.dim() < 3:
        raise ValueError(f"{name} expects images shaped [..., C, H, W], got shape {tuple(x.shape)}")
    return x.reshape(-1, *x.shape[-3:])


def _uniform(shape, generator: torch.Generator, device, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniforms in [0, 1) drawn on the CPU from ``generator``, then moved to ``device``."""
    return torch.rand(shape, generator=generator, dtype=dtype).to(device)


def _symmetric(value: Range, name: str) -> tuple[float, float]:
    low, high = (-value, value) if isinstance(value, (int, float)) else value
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"random_affine: {name} must be a number or a (low, high) range, got {value!r}")
    return float(low), float(high)


def default_augmentation() -> Transform:
    """What ``augment: true`` applies during training: small rotations, shifts and
    scalings. No flips: a mirrored character is often another character."""
    return random_affine(degrees=10.0, translate=0.1, scale=(0.9, 1.1))
