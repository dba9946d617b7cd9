"""The continuous relaxation of the DARTS cell space: every edge a softmax-weighted mix of all operations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fewshot.nas.darts.genotype import Genotype, make_genotype
from fewshot.nas.darts.network import make_stem, preprocess, reduction_layers
from fewshot.nas.darts.ops import OPS, make_op


def edge_inputs(nodes: int) -> list[tuple[int, int]]:
    """(node, input) of every edge, node by node: node i has inputs 0 .. i + 1."""
    return [(i, j) for i in range(nodes) for j in range(i + 2)]


class MixedOp(nn.Module):
    """sum_k w_k op_k(x) over the operations (``none`` contributes nothing and is not computed)."""

    def __init__(self, ops: tuple[str, ...], channels: int, stride: int):
        super().__init__()
        self.names, self.stride = ops, stride
        self.ops = nn.ModuleList(make_op(op, channels, stride, affine=False) for op in ops)
        # DARTS puts a BatchNorm without affine after the pools of the search network
        self.pool_bn = nn.ModuleDict(
            {str(k): nn.BatchNorm2d(channels, affine=False) for k, n in enumerate(ops) if "pool" in n}
        )

    def forward(self, x: Tensor, weights: Tensor, aux_skip: float = 0.0) -> Tensor:
        """x: [B, C, H, W], weights: [n_ops] -> [B, C, H', W']; ``aux_skip``: beta * x added (stride 1 only)."""
        out: Tensor | int = aux_skip * x if aux_skip and self.stride == 1 else 0
        for k, (name, op) in enumerate(zip(self.names, self.ops)):
            if name == "none":
                continue
            y = op(x)
            if str(k) in self.pool_bn:
                y = self.pool_bn[str(k)](y)
            out = out + weights[k] * y
        assert isinstance(out, Tensor), "a mixed operation needs an operation other than none"
        return out


class SearchCell(nn.Module):
    def __init__(self, ops, nodes: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre0, self.pre1 = preprocess(c_pp, c_p, c, reduction_prev, affine=False)
        self.inputs = edge_inputs(nodes)
        self.edges = nn.ModuleList(MixedOp(ops, c, 2 if reduction and j < 2 else 1) for _, j in self.inputs)
        self.nodes = nodes

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor, aux_skip: float = 0.0) -> Tensor:
        """weights: [edges, n_ops] (softmaxed) -> [B, nodes * c, H', W']."""
        states, e = [self.pre0(s0), self.pre1(s1)], 0
        for i in range(self.nodes):
            total = 0
            for j in range(i + 2):
                total = total + self.edges[e](states[j], weights[e], aux_skip)
                e += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """All DARTS cells at once; ``alpha_normal`` / ``alpha_reduce`` [edges, n_ops] are the architecture.

    Images [B, C, H, W] -> features [B, D] (then ``head`` when ``num_classes``), like ``DartsNetwork``.
    ``weight_parameters()`` are the network weights, ``arch_parameters()`` the alphas.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 8,
        layers: int = 5,
        nodes: int = 4,
        ops: tuple[str, ...] = OPS,
        num_classes: int | None = None,
        stem_multiplier: int = 3,
        stem_stride: int = 1,
        alpha_init: float = 1e-3,
        seed: int | None = None,
    ):
        super().__init__()
        unknown = set(ops) - set(OPS)
        if unknown or len(ops) < 2:
            raise ValueError(f"operations must be two or more of {', '.join(OPS)}; unknown: {sorted(unknown)}")
        self.ops, self.nodes = tuple(ops), nodes
        c_stem = stem_multiplier * channels
        self.stem = make_stem(in_channels, c_stem, stem_stride)
        c_pp, c_p, c, reduction_prev = c_stem, c_stem, channels, False
        self.reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in self.reductions
            c = c * 2 if reduction else c
            self.cells.append(SearchCell(self.ops, nodes, c_pp, c_p, c, reduction, reduction_prev))
            c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
        self.out_features = c_p
        self.head = nn.Linear(c_p, num_classes) if num_classes else None
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        edges = len(edge_inputs(nodes))
        self.alpha_normal = nn.Parameter(alpha_init * torch.randn(edges, len(ops), generator=g))  # [E, n_ops]
        self.alpha_reduce = nn.Parameter(alpha_init * torch.randn(edges, len(ops), generator=g))  # [E, n_ops]
        self.aux_skip = 0.0  # DARTS-: weight of an auxiliary skip on every stride-1 edge (set by the search)

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self._alphas())

    def _alphas(self) -> tuple[nn.Parameter, nn.Parameter]:
        holder = self.__dict__.get("_alpha_holder")
        source = holder if holder is not None else self
        return source.alpha_normal, source.alpha_reduce

    def move_alphas_out(self) -> nn.Module:
        """Unregister the alphas from this module (it still uses them) and return a module holding them, so that
        a wrapper adapting every parameter of its model (MAML's inner loop) leaves the architecture alone."""
        holder = nn.Module()
        holder.register_parameter("alpha_normal", self._parameters.pop("alpha_normal"))
        holder.register_parameter("alpha_reduce", self._parameters.pop("alpha_reduce"))
        self.__dict__["_alpha_holder"] = holder
        return holder

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alpha_")]

    def forward(self, x: Tensor) -> Tensor:
        alpha_normal, alpha_reduce = self._alphas()
        w_normal = F.softmax(alpha_normal, dim=-1)  # [E, n_ops]
        w_reduce = F.softmax(alpha_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, w_reduce if i in self.reductions else w_normal, self.aux_skip)
        z = s1.mean(dim=(2, 3))  # [B, D]
        return z if self.head is None else self.head(z)

    def op_weights(self) -> dict[str, dict[str, float]]:
        """Softmax weight of each operation averaged over the edges, per cell type (for plots)."""
        out = {}
        for kind, alpha in zip(("normal", "reduce"), self._alphas()):
            w = F.softmax(alpha.detach(), dim=-1).mean(0)
            out[kind] = {op: float(v) for op, v in zip(self.ops, w)}
        return out

    def genotype(self, max_skip: int | None = None) -> Genotype:
        """The discrete cells: per node the two incoming edges whose strongest non-``none`` operation weighs most,
        each with that operation. ``max_skip``: at most that many skip connections in the normal cell (the
        weakest extra ones take their best other parameterised operation; P-DARTS' rule against collapse)."""
        return derive_genotype(*self._alphas(), self.ops, self.nodes, max_skip)


def _derive_cell(weights: Tensor, ops, nodes: int) -> list[list[tuple[str, int, float]]]:
    """weights: [E, n_ops] softmaxed -> per node two (op, input, strength)."""
    allowed = [k for k, op in enumerate(ops) if op != "none"]
    cell, e = [], 0
    for i in range(nodes):
        candidates = []
        for j in range(i + 2):
            row = weights[e]
            k = max(allowed, key=lambda k: float(row[k]))
            candidates.append((ops[k], j, float(row[k])))
            e += 1
        cell.append(sorted(candidates, key=lambda t: -t[2])[:2])
    return cell


def derive_genotype(
    alpha_normal: Tensor, alpha_reduce: Tensor, ops, nodes: int, max_skip: int | None = None
) -> Genotype:
    """See ``Supernet.genotype``."""
    w_normal = F.softmax(alpha_normal.detach(), dim=-1)
    w_reduce = F.softmax(alpha_reduce.detach(), dim=-1)
    normal = _derive_cell(w_normal, ops, nodes)
    others = [k for k, op in enumerate(ops) if op not in ("none", "skip_connect")]
    if max_skip is not None and others:
        skips = sorted(
            ((i, k) for i, node in enumerate(normal) for k, (op, _, _) in enumerate(node) if op == "skip_connect"),
            key=lambda ik: normal[ik[0]][ik[1]][2],
        )
        for i, k in skips[: max(0, len(skips) - max_skip)]:
            _, j, _ = normal[i][k]
            e = sum(n + 2 for n in range(i)) + j  # edge index of (node i, input j)
            best = max(others, key=lambda o: float(w_normal[e, o]))
            normal[i][k] = (ops[best], j, float(w_normal[e, best]))
    reduce = _derive_cell(w_reduce, ops, nodes)
    strip = lambda cell: [[(op, j) for op, j, _ in node] for node in cell]  # noqa: E731
    return make_genotype(strip(normal), strip(reduce), ops)
