"""A deployed learner: raw image bytes in, class probabilities out.

Shared by ``fewshot predict``, the HTTP service and the Python API: images are
decoded with the preprocessing the learner was trained with (size, channels,
inversion), every request adapts from the meta-learned parameters, which never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fewshot.data.images import ImageTooLarge, decode_image
from fewshot.engine.learners import StoredLearner, load_learner

MAX_IMAGE_PIXELS = 4096 * 4096  # per image, for ``fewshot predict`` and (by default) the service


class DeployError(ValueError):
    """A request that cannot be served: its message says why (HTTP 4xx)."""


@dataclass
class Prediction:
    classes: list[str]
    probabilities: Tensor  # [Q, N]

    def best(self) -> list[tuple[str, float]]:
        p, i = self.probabilities.max(dim=1)
        return [(self.classes[j], float(q)) for j, q in zip(i.tolist(), p)]


class Deployment:
    """A checkpoint loaded for prediction."""

    def __init__(self, algorithm, stored: StoredLearner, device: str | torch.device = "cpu"):
        self.algorithm = algorithm.to(device).eval()
        self.stored, self.spec, self.device = stored, stored.spec, torch.device(device)
        self.preprocessing = stored.spec.preprocessing or {}

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> Deployment:
        algorithm, stored = load_learner(path)
        if stored.spec.task != "classification":
            raise DeployError(f"{path}: a {stored.spec.task} learner; predict and serve classify images")
        if not stored.spec.preprocessing:
            raise DeployError(f"{path}: the checkpoint records no image preprocessing; cannot decode images for it")
        return cls(algorithm, stored, device)

    def decode(self, data: bytes, name: str, max_pixels: int | None = MAX_IMAGE_PIXELS) -> Tensor:
        """Image bytes -> float tensor [C, S, S] exactly as the learner saw its training data.

        ``name`` (a path, or a field for HTTP) starts every error; an image over ``max_pixels``
        raises ``ImageTooLarge`` before its pixels are decoded, any other bad image ``DeployError``.
        """
        p = self.preprocessing
        options = {"channels": p["channels"], "size": p["image_size"], "invert": p["inverted"]}
        try:
            array = decode_image(data, name, max_pixels=max_pixels, **options)
        except ImageTooLarge:
            raise
        except ValueError as e:
            raise DeployError(str(e)) from None
        return torch.from_numpy(np.ascontiguousarray(array)).float().div_(255)

    def predict(self, support: Sequence[Tensor], labels: Sequence[str], queries: Sequence[Tensor]) -> Prediction:
        """Adapt on the labelled support images and classify the query images."""
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise DeployError(f"the support set needs at least 2 classes, got {len(classes)} ({', '.join(classes)})")
        if not queries:
            raise DeployError("no query images")
        ways = self.spec.ways
        if self.algorithm.fixed_ways and len(classes) != ways:
            raise DeployError(
                f"this {self.spec.algorithm} learner was meta-trained for {ways}-way tasks; "
                f"the support set has {len(classes)} classes"
            )
        index = {c: i for i, c in enumerate(classes)}
        sx = torch.stack(list(support)).to(self.device)  # [S, C, H, W]
        sy = torch.tensor([index[c] for c in labels], device=self.device)  # [S]
        qx = torch.stack(list(queries)).to(self.device)  # [Q, C, H, W]
        predictor = self.algorithm.adapt(sx, sy)
        with torch.no_grad():
            logits = predictor(qx)  # [Q, N]
        return Prediction(classes, torch.softmax(logits.float(), dim=-1).cpu())
