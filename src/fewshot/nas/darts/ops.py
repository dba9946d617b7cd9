"""The operations of the DARTS cell space (Liu et al., 2019), for any spatial size.

Every operation maps [B, C, H, W] to [B, C, H', W'] with H' = H (stride 1) or ceil(H / 2) (stride 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OPS = (
    "none",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
)
PARAMETER_FREE = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")


class Zero(nn.Module):
    """The 'none' operation: zeros of the output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0) if self.stride == 1 else x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out, affine=affine)
        )


class DilConv(nn.Sequential):
    """ReLU - depthwise (dilated) conv - pointwise conv - BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine=True):
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two depthwise-separable convs, the first carrying the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine), DilConv(c_in, c_out, kernel, 1, padding, 1, affine)
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two offset stride-2 1x1 convs (odd sizes padded first)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))  # [B, C, even H, even W]
        return self.bn(torch.cat([self.conv1(x), self.conv2(x[:, :, 1:, 1:])], dim=1))


def make_op(name: str, channels: int, stride: int, affine: bool = True) -> nn.Module:
    """One operation by name (``OPS``)."""
    c = channels
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    kind, _, size = name.rpartition("_")
    k = int(size.split("x")[0]) if size[:1].isdigit() else 0
    if kind == "sep_conv" and k in (3, 5):
        return SepConv(c, c, k, stride, k // 2, affine)
    if kind == "dil_conv" and k in (3, 5):
        return DilConv(c, c, k, stride, k - 1, 2, affine)
    raise ValueError(f"unknown DARTS operation {name!r}; valid: {', '.join(OPS)}")
