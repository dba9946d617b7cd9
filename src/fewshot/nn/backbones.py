"""Backbones of the few-shot literature as plain ``nn.Module``s.

Each maps images [B, C, H, W] (or features [B, D]) to embeddings [B, out_features];
given ``num_classes`` it ends in a linear ``head`` (the MAML / ANIL setting), so
``model.features`` is the body and ``model.head`` the classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fewshot.registry import BACKBONES, check_options


class Backbone(nn.Module):
    """``features`` then optional linear ``head``; ``out_features`` is the output width."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int | None):
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes) if num_classes else None
        self.out_features = num_classes or feature_dim

    def forward(self, x: Tensor) -> Tensor:
        z = self.features(x)  # [B, feature_dim]
        return z if self.head is None else self.head(z)

    @classmethod
    def for_input(cls, input_shape: Sequence[int], num_classes: int | None = None, **options) -> Backbone:
        """This backbone for inputs shaped ``input_shape`` (one example, e.g. [C, H, W]), with ``options``
        checked against its settings; what the shape determines (channels, size) is filled in."""
        check_options(cls, options, f"backbone {cls.__name__}", ("num_classes",))
        return cls(num_classes=num_classes, **{**cls.shape_options(tuple(input_shape)), **options})

    @classmethod
    def shape_options(cls, shape: tuple[int, ...]) -> dict:
        """The settings that inputs of ``shape`` determine (images: ``in_channels``)."""
        if len(shape) != 3:
            raise ValueError(f"backbone {cls.__name__} needs images [C, H, W], but the data has shape {list(shape)}")
        return {"in_channels": shape[0]}


DOWNSAMPLE = ("maxpool", "stride")
POOL = ("flatten", "mean")


def conv_block(in_channels: int, out_channels: int, downsample: str = "maxpool") -> nn.Sequential:
    """conv3x3 - BatchNorm - ReLU - maxpool 2: the block of the standard Conv4.
    ``downsample="stride"``: a stride-2 conv instead of the maxpool (same output side, rounded up)."""
    if downsample not in DOWNSAMPLE:
        raise ValueError(f"unknown downsample {downsample!r}; valid: {', '.join(DOWNSAMPLE)}")
    pool = downsample == "maxpool"
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=1 if pool else 2, padding=1)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(), *([nn.MaxPool2d(2)] if pool else []))


class Conv4(Backbone):
    """4 x [conv3x3(hidden) - BN - ReLU - maxpool]: 28x28 -> 1x1 (64 features),
    84x84 -> 5x5 (1600 features).

    ``downsample="stride"``: stride-2 convs instead of maxpools, the network of MAML's and
    Reptile's Omniglot experiments (28x28 -> 2x2): a first-order MAML step on 28x28 images runs
    about 2x faster on CPU, 3 to 4x with vmap (benchmarks/conv4_speed.py).
    ``pool``: ``"flatten"`` the last map (2x2x64 = 256 features, as Reptile's code does) or
    average it over space to ``hidden`` features (``"mean"``, as MAML's Omniglot network does).
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        num_classes: int | None = None,
        image_size: int = 28,
        downsample: str = "maxpool",
        pool: str = "flatten",
    ):
        if pool not in POOL:
            raise ValueError(f"unknown pool {pool!r}; valid: {', '.join(POOL)}")
        blocks = [conv_block(in_channels if i == 0 else hidden, hidden, downsample) for i in range(4)]
        side = image_size
        for _ in range(4):
            side = side // 2 if downsample == "maxpool" else (side + 1) // 2
        if side < 1:
            raise ValueError(f"Conv4 needs images of at least 16x16, got {image_size}")
        if pool == "mean":  # [B, hidden, side, side] -> [B, hidden]
            super().__init__(nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten()), hidden, num_classes)
        else:  # [B, hidden, side, side] -> [B, hidden * side * side]
            super().__init__(nn.Sequential(*blocks, nn.Flatten()), hidden * side * side, num_classes)

    @classmethod
    def shape_options(cls, shape: tuple[int, ...]) -> dict:
        return {**super().shape_options(shape), "image_size": shape[-1]}


class ResidualBlock(nn.Module):
    """ResNet-12 block: 3 x conv3x3-BN (LeakyReLU 0.1 between), 1x1 shortcut, maxpool 2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        layers = []
        for i in range(3):
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
            ]
            if i < 2:
                layers.append(nn.LeakyReLU(0.1))
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNet12(Backbone):
    """ResNet-12 (TADAM / MetaOptNet): 4 residual blocks, global average pooling."""

    def __init__(
        self, in_channels: int = 3, widths: Sequence[int] = (64, 160, 320, 640), num_classes: int | None = None
    ):
        chans = [in_channels, *widths]
        blocks = [ResidualBlock(chans[i], chans[i + 1]) for i in range(len(widths))]
        body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        super().__init__(body, widths[-1], num_classes)


class MLP(Backbone):
    """Fully connected ReLU network: sinusoid regression (40-40, as in MAML), tabular data,
    molecular fingerprints."""

    def __init__(self, in_features: int = 1, hidden: Sequence[int] = (40, 40), num_classes: int | None = None):
        dims = [in_features, *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        super().__init__(nn.Sequential(*layers), dims[-1], num_classes)

    @classmethod
    def shape_options(cls, shape: tuple[int, ...]) -> dict:
        return {"in_features": math.prod(shape)}  # any input, flattened


class CosineLinear(nn.Module):
    """Cosine-similarity classifier (Baseline++): logits = scale * cos(x, w_c)."""

    def __init__(self, in_features: int, out_features: int, scale: float = 10.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / in_features**0.5)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.normalize(x, dim=-1)  # [B, D]
        w = nn.functional.normalize(self.weight, dim=-1)  # [C, D]
        return self.scale * x @ w.T  # [B, C]


def get_backbone(name: str, **settings) -> nn.Module:
    """Backbone by name (``fewshot list`` shows them) with its settings."""
    return BACKBONES.build(name, **settings)
