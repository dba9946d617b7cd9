"""Networks of DARTS cells: the discrete network of a genotype, usable as a few-shot backbone.

Macro skeleton (shared with the supernet): a 3x3 stem conv, ``layers`` cells with reduction
cells (stride 2, doubled channels) at 1/3 and 2/3 of the depth, global average pooling.
Images [B, C, H, W] -> features [B, D] (D = channels of the last cell), then an optional linear head.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from fewshot.nas.darts.genotype import Genotype, genotype_from_obj, parse_genotype
from fewshot.nas.darts.ops import FactorizedReduce, ReLUConvBN, make_op
from fewshot.nn import Backbone


def reduction_layers(layers: int) -> set[int]:
    """Indices of the reduction cells: 1/3 and 2/3 of the way (one in the middle for 2 layers)."""
    return {layers // 3, 2 * layers // 3} if layers >= 3 else {layers // 2} if layers == 2 else set()


def make_stem(in_channels: int, channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False), nn.BatchNorm2d(channels))


def preprocess(c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both cell inputs to ``c`` channels and the same spatial size."""
    pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
    return pre0, ReLUConvBN(c_p, c, 1, 1, 0, affine)


class Cell(nn.Module):
    """A discrete cell of a genotype: each node sums its two chosen operations; output = concat of nodes."""

    def __init__(self, cell, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre0, self.pre1 = preprocess(c_pp, c_p, c, reduction_prev, affine=True)
        self.edges = [j for node in cell for _, j in node]
        self.ops = nn.ModuleList(make_op(op, c, 2 if reduction and j < 2 else 1) for node in cell for op, j in node)
        self.nodes = len(cell)

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]  # 2 x [B, c, H, W]
        for i in range(self.nodes):
            a, b = 2 * i, 2 * i + 1
            states.append(self.ops[a](states[self.edges[a]]) + self.ops[b](states[self.edges[b]]))
        return torch.cat(states[2:], dim=1)  # [B, nodes * c, H', W']


class DartsFeatures(nn.Module):
    """Stem + cells + global pooling: images [B, C, H, W] -> features [B, out_features]."""

    def __init__(
        self, genotype: Genotype, in_channels: int, channels: int, layers: int, stem_multiplier: int, stem_stride: int
    ):
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = make_stem(in_channels, c_stem, stem_stride)
        c_pp, c_p, c, reduction_prev = c_stem, c_stem, channels, False
        reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            c = c * 2 if reduction else c
            cell = genotype.reduce if reduction else genotype.normal
            self.cells.append(Cell(cell, c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, genotype.nodes * c, reduction
        self.out_features = c_p
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        s0 = s1 = self.stem(x)  # [B, c_stem, H, W]
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.pool(s1).flatten(1)  # [B, out_features]


def load_genotype(genotype) -> Genotype:
    """A genotype from a ``Genotype``, a dict, a canonical or JSON string, or a path to a file holding one."""
    if isinstance(genotype, (str, Path)) and Path(genotype).suffix == ".json" and Path(genotype).is_file():
        obj = json.loads(Path(genotype).read_text())
        return genotype_from_obj(obj.get("genotype", obj) if isinstance(obj, dict) else obj)
    if isinstance(genotype, str):
        return parse_genotype(genotype)
    return genotype_from_obj(genotype)


class DartsNetwork(Backbone):
    """The discrete network of a genotype as a backbone: ``features`` [B, D], optional linear ``head``.

    genotype: a ``Genotype``, dict, canonical/JSON string or file (see ``load_genotype``).
    channels: initial cell width (doubled at each reduction); layers: number of cells;
    stem_stride: 2 halves large images once before the cells.
    """

    def __init__(
        self,
        genotype,
        in_channels: int = 1,
        channels: int = 16,
        layers: int = 5,
        num_classes: int | None = None,
        stem_multiplier: int = 3,
        stem_stride: int = 1,
        image_size: int | None = None,  # accepted for the core's backbone settings; any size works
    ):
        genotype = load_genotype(genotype)
        features = DartsFeatures(genotype, in_channels, channels, layers, stem_multiplier, stem_stride)
        super().__init__(features, features.out_features, num_classes)
        self.genotype = genotype
