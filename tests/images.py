"""Small image trees made by the tests: one folder of drawn shapes per class."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "cross", "triangle", "hline", "vline", "diamond", "dot"]


def draw(shape: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    o = rng.integers(-3, 4, size=2)
    a, b = 6 + o[0], size - 7 + o[1]
    w = int(rng.integers(2, 4))
    if shape == "circle":
        d.ellipse([a, a, b, b], outline=0, width=w)
    elif shape == "square":
        d.rectangle([a, a, b, b], outline=0, width=w)
    elif shape == "cross":
        d.line([a, a, b, b], fill=0, width=w)
        d.line([a, b, b, a], fill=0, width=w)
    elif shape == "triangle":
        d.polygon([(size // 2, a), (a, b), (b, b)], outline=0, width=w)
    elif shape == "hline":
        d.line([a, size // 2, b, size // 2], fill=0, width=w + 1)
    elif shape == "vline":
        d.line([size // 2, a, size // 2, b], fill=0, width=w + 1)
    elif shape == "diamond":
        m = size // 2
        d.polygon([(m, a), (b, m), (m, b), (a, m)], outline=0, width=w)
    else:
        d.ellipse([size // 2 - 4, size // 2 - 4, size // 2 + 4, size // 2 + 4], fill=0)
    return img


def make_tree(root: Path, classes=SHAPES, per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for shape in classes:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, rng).save(root / shape / f"{i}.png")
    return root
