"""Image data made by the tests: trees of drawn shapes, one folder per class, and one-shot runs in the
Omniglot release layout."""

import random
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


def shape(run: int, cls: int) -> Image.Image:
    """A black-on-white 105x105 drawing, distinct for every (run, class)."""
    img = Image.new("1", (105, 105), 1)
    draw = ImageDraw.Draw(img)
    x, y = 10 + 15 * cls, 10 + 20 * run
    draw.rectangle([x, y, x + 12, y + 50], fill=0)
    draw.ellipse([100 - x, 60, 100 - x + 25 + 3 * cls, 95], outline=0, width=4)
    return img


def make_runs(root: Path, runs: int = 3, ways: int = 5, seed: int = 0) -> dict[str, list[int]]:
    """``runNN/{training,test}/*.png`` and ``class_labels.txt``; test item i shows class answer[i]."""
    rng = random.Random(seed)
    answers = {}
    for r in range(1, runs + 1):
        name = f"run{r:02d}"
        (root / name / "training").mkdir(parents=True)
        (root / name / "test").mkdir()
        order = list(range(1, ways + 1))
        rng.shuffle(order)
        lines = []
        for c in range(1, ways + 1):
            shape(r, c).save(root / name / "training" / f"class{c:02d}.png")
        for i, c in enumerate(order, start=1):
            shape(r, c).save(root / name / "test" / f"item{i:02d}.png")
            lines.append(f"{name}/test/item{i:02d}.png {name}/training/class{c:02d}.png")
        (root / name / "class_labels.txt").write_text("\n".join(lines) + "\n")
        answers[name] = [c - 1 for c in order]
    return answers
