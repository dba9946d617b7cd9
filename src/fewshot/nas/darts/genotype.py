"""Genotypes: the discrete cells DARTS derives, as values with a canonical string.

A cell has ``nodes`` intermediate nodes; node ``i`` sums two operations, each applied to one of
its inputs ``0 .. i + 1`` (0 and 1 are the outputs of the two previous cells, ``j + 2`` is node
``j``). The cell's output concatenates all intermediate nodes.

Canonical string: ``normal=op~in,op~in|op~in,op~in|...;reduce=...`` (nodes separated by ``|``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from fewshot.nas.darts.ops import OPS
from fewshot.nas.errors import NASError

Cell = tuple[tuple[tuple[str, int], tuple[str, int]], ...]  # per node: two (operation, input) edges


@dataclass(frozen=True)
class Genotype:
    normal: Cell
    reduce: Cell

    @property
    def nodes(self) -> int:
        return len(self.normal)

    def cells(self) -> dict[str, Cell]:
        return {"normal": self.normal, "reduce": self.reduce}

    def __str__(self) -> str:
        return to_string(self)


def _canonical(cell) -> Cell:
    """Each node's two edges sorted by input, then operation."""
    # a Cell once ``validate`` has checked that every node has two edges
    return cast(
        Cell, tuple(tuple(sorted(((str(op), int(j)) for op, j in node), key=lambda e: (e[1], e[0]))) for node in cell)
    )


def make_genotype(normal, reduce, ops=OPS) -> Genotype:
    """A validated genotype; ``NASError`` naming the first problem."""
    g = Genotype(_canonical(normal), _canonical(reduce))
    validate(g, ops=ops)
    return g


def validate(g: Genotype, nodes: int | None = None, ops=OPS) -> None:
    if len(g.normal) != len(g.reduce) or not g.normal:
        raise NASError(
            f"genotype: normal and reduce cells need the same number (>= 1) of nodes, got "
            f"{len(g.normal)} and {len(g.reduce)}"
        )
    if nodes is not None and g.nodes != nodes:
        raise NASError(f"genotype has {g.nodes} nodes per cell, the space has {nodes}")
    for kind, cell in g.cells().items():
        for i, node in enumerate(cell):
            if len(node) != 2:
                raise NASError(f"genotype {kind} node {i}: needs exactly 2 edges, has {len(node)}")
            inputs = [j for _, j in node]
            if len(set(inputs)) != 2 or not all(0 <= j < i + 2 for j in inputs):
                raise NASError(f"genotype {kind} node {i}: inputs {inputs} must be two distinct values in 0..{i + 1}")
            for op, _ in node:
                if op not in ops or op == "none":
                    raise NASError(
                        f"genotype {kind} node {i}: {op!r} is not an operation of the space "
                        f"({', '.join(o for o in ops if o != 'none')})"
                    )


def to_string(g: Genotype) -> str:
    def cell(c: Cell) -> str:
        return "|".join(",".join(f"{op}~{j}" for op, j in node) for node in c)

    return f"normal={cell(g.normal)};reduce={cell(g.reduce)}"


def to_json(g: Genotype) -> dict:
    return {
        "normal": [[list(e) for e in node] for node in g.normal],
        "reduce": [[list(e) for e in node] for node in g.reduce],
    }


def parse_genotype(text: str, ops=OPS) -> Genotype:
    """A genotype from its canonical string, its JSON form, or a file holding either."""
    text = text.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise NASError(f"genotype JSON does not parse: {e}") from None
        return genotype_from_obj(obj, ops)
    if "=" not in text and Path(text).is_file():
        return parse_genotype(Path(text).read_text(), ops)
    parts = dict(p.partition("=")[::2] for p in text.split(";"))
    if set(parts) != {"normal", "reduce"}:
        raise NASError(f"genotype {text!r} must read normal=op~in,op~in|...;reduce=... (or be JSON or a file)")
    cells = {}
    for kind, body in parts.items():
        nodes = []
        for node in body.split("|"):
            edges = []
            for edge in node.split(","):
                op, tilde, j = edge.partition("~")
                if not tilde or not j.strip().isdigit():
                    raise NASError(f"genotype {kind}: edge {edge!r} should be op~input")
                edges.append((op.strip(), int(j)))
            nodes.append(edges)
        cells[kind] = nodes
    return make_genotype(cells["normal"], cells["reduce"], ops)


def genotype_from_obj(obj, ops=OPS) -> Genotype:
    """From ``{"normal": [[[op, in], [op, in]], ...], "reduce": ...}``, a ``Genotype`` or a string."""
    if isinstance(obj, Genotype):
        validate(obj, ops=ops)
        return obj
    if isinstance(obj, str):
        return parse_genotype(obj, ops)
    if not isinstance(obj, dict) or set(obj) != {"normal", "reduce"}:
        raise NASError("a genotype object needs exactly the keys 'normal' and 'reduce'")
    try:
        return make_genotype(
            [[(op, int(j)) for op, j in node] for node in obj["normal"]],
            [[(op, int(j)) for op, j in node] for node in obj["reduce"]],
            ops,
        )
    except (TypeError, ValueError):
        raise NASError("genotype cells must be lists of nodes, each a list of two [operation, input] pairs") from None
