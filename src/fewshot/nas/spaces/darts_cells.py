"""The DARTS cell space as a search space of genotypes, for query-based strategies (evolution over cells)."""

from __future__ import annotations

import math

import numpy as np

from fewshot.nas.darts.genotype import Genotype, make_genotype, parse_genotype, to_string
from fewshot.nas.darts.ops import OPS
from fewshot.nas.errors import NASError
from fewshot.nas.spaces.base import SearchSpace

KINDS = ("normal", "reduce")


class DartsCellSpace(SearchSpace[Genotype]):
    """Genotypes with ``nodes`` nodes per cell over ``ops`` (``none`` is never chosen). A mutation changes the
    operation or the input of one edge of one cell; crossover takes each node from either parent."""

    def __init__(self, nodes: int = 4, ops: tuple[str, ...] = OPS, name: str = "darts"):
        self.ops = tuple(o for o in ops if o != "none")
        unknown = set(self.ops) - set(OPS)
        if unknown or not self.ops or nodes < 1:
            raise NASError(f"a DARTS cell space needs nodes >= 1 and operations of {', '.join(OPS)}")
        self.nodes, self.name = nodes, name
        self._op_index = {op: k for k, op in enumerate(self.ops)}

    @property
    def size(self) -> int:
        per_cell = math.prod(math.comb(i + 2, 2) * len(self.ops) ** 2 for i in range(self.nodes))
        return per_cell**2

    def _make(self, cells: dict) -> Genotype:
        return make_genotype(cells["normal"], cells["reduce"], ops=("none", *self.ops))

    def _cells(self, g: Genotype) -> dict:
        return {k: [list(node) for node in getattr(g, k)] for k in KINDS}

    def sample(self, rng):
        cells = {}
        for kind in KINDS:
            nodes = []
            for i in range(self.nodes):
                inputs = rng.choice(i + 2, size=2, replace=False)
                nodes.append([(self.ops[int(rng.integers(len(self.ops)))], int(j)) for j in inputs])
            cells[kind] = nodes
        return self._make(cells)

    def neighbours(self, g: Genotype) -> list[Genotype]:
        out = []
        for kind in KINDS:
            for i in range(self.nodes):
                for e in range(2):
                    op, j = getattr(g, kind)[i][e]
                    other = getattr(g, kind)[i][1 - e][1]
                    moves = [(o, j) for o in self.ops if o != op] + [
                        (op, k) for k in range(i + 2) if k not in (j, other)
                    ]
                    for move in moves:
                        cells = self._cells(g)
                        cells[kind][i][e] = move
                        out.append(self._make(cells))
        return out

    def crossover(self, a: Genotype, b: Genotype, rng) -> Genotype:
        take = rng.random((2, self.nodes)) < 0.5
        return self._make(
            {k: [list((a if take[c, i] else b).cells()[k][i]) for i in range(self.nodes)] for c, k in enumerate(KINDS)}
        )

    def encode(self, g: Genotype) -> np.ndarray:
        """Per cell and edge (node, input): one-hot of the operation, zeros where the edge is absent."""
        edges = [(i, j) for i in range(self.nodes) for j in range(i + 2)]
        v = np.zeros((2, len(edges), len(self.ops)), dtype=np.float32)
        for c, kind in enumerate(KINDS):
            for i, node in enumerate(getattr(g, kind)):
                for op, j in node:
                    v[c, edges.index((i, j)), self._op_index[op]] = 1.0
        return v.ravel()

    def to_string(self, g: Genotype) -> str:
        return to_string(g)

    def parse(self, text: str) -> Genotype:
        g = parse_genotype(text, ops=("none", *self.ops))
        if g.nodes != self.nodes:
            raise NASError(f"genotype has {g.nodes} nodes per cell, the space {self.name!r} has {self.nodes}")
        return g

    def contains(self, g) -> bool:
        try:
            return isinstance(g, Genotype) and self.parse(to_string(g)) == g
        except NASError:
            return False
