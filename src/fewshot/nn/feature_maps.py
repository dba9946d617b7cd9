"""Backbones that keep the spatial maps (no flatten), for methods that compare feature maps."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from fewshot.nn.backbones import conv_block
from fewshot.registry import check_options


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU())


class Conv4Maps(nn.Sequential):
    """The paper's embedding module: 4 x conv3x3(hidden)-BN-ReLU, 2x2 max-pooling after
    the first two blocks only, no flatten: [B, C, H, W] -> [B, hidden, H//4, W//4]
    (28x28 -> 7x7, 84x84 -> 21x21). ``out_shape`` is the feature-map shape.
    (Padding 1 in every block, like ``fewshot.nn.Conv4``; the paper's code leaves the
    first two unpadded.)"""

    def __init__(self, in_channels: int = 1, hidden: int = 64, image_size: int | Sequence[int] = 28) -> None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(h, w) < 4:
            raise ValueError(f"Conv4Maps needs images of at least 4x4, got {h}x{w}")
        super().__init__(
            conv_block(in_channels, hidden),
            conv_block(hidden, hidden),
            conv_bn_relu(hidden, hidden),
            conv_bn_relu(hidden, hidden),
        )
        self.out_shape = (hidden, h // 4, w // 4)

    @classmethod
    def for_input(cls, input_shape: Sequence[int], **options) -> Conv4Maps:
        """For images shaped ``input_shape`` [C, H, W], ``options`` checked against the settings."""
        if len(input_shape) != 3:
            raise ValueError(f"Conv4Maps needs images [C, H, W], but the data has shape {list(input_shape)}")
        check_options(cls, options, "backbone 'conv4' (feature maps)", ("in_channels", "image_size"))
        return cls(input_shape[0], image_size=input_shape[-1], **options)
