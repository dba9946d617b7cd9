"""Architecture strings <-> per-position choice values.

Three formats: fixed-length choice strings (NAS-Bench-Macro's ``"01201002"``, one character
per position, ``-`` for an inactive one), NAS-Bench-201 cell strings
(``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: node i lists its edges from nodes 0..i-1) and
named strings (``depth=3,op=conv``) for anything else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fewshot.nas.errors import NASError

INACTIVE = "-"
_CELL_ITEM = re.compile(r"^([^|~+]+)~(\d+)$")


class ChoiceStringCodec:
    """One character per position."""

    kind = "choice-string"

    def __init__(self, length: int):
        self.length = length

    def format(self, values: Sequence[str | None]) -> str:
        return "".join(INACTIVE if v is None else v for v in values)

    def parse(self, text: str) -> list[str | None]:
        if len(text) != self.length:
            raise NASError(f"architecture {text!r} has {len(text)} characters, the space has {self.length} positions")
        return [None if c == INACTIVE else c for c in text]


class CellStringCodec:
    """NAS-Bench-201 cell strings over ``nodes`` nodes after the input (``nodes * (nodes + 1) / 2`` edges)."""

    kind = "cell-string"

    def __init__(self, nodes: int):
        self.nodes = nodes
        self.length = nodes * (nodes + 1) // 2

    def edge_names(self) -> list[str]:
        return [f"{j}->{i}" for i in range(1, self.nodes + 1) for j in range(i)]

    def format(self, values: Sequence[str | None]) -> str:
        groups, k = [], 0
        for i in range(1, self.nodes + 1):
            groups.append("|" + "|".join(f"{values[k + j]}~{j}" for j in range(i)) + "|")
            k += i
        return "+".join(groups)

    def parse(self, text: str) -> list[str]:
        ops = parse_cell_string(text)
        if len(ops) != self.length:
            raise NASError(f"cell string {text!r} has {len(ops)} edges, the space has {self.length}")
        return ops


def parse_cell_string(text: str) -> list[str]:
    """The operations of a cell string, edge by edge; ``NASError`` unless it is well formed."""
    groups = text.strip().split("+")
    ops: list[str] = []
    for i, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise NASError(f"cell string {text!r}: node {i} must look like |op~0|op~1|")
        items = group[1:-1].split("|")
        if len(items) != i:
            raise NASError(f"cell string {text!r}: node {i} must have {i} incoming edges, has {len(items)}")
        for j, item in enumerate(items):
            m = _CELL_ITEM.match(item)
            if not m or int(m.group(2)) != j:
                raise NASError(f"cell string {text!r}: edge {item!r} of node {i} should be op~{j}")
            ops.append(m.group(1))
    return ops


def is_cell_string(text: str) -> bool:
    try:
        parse_cell_string(text)
    except NASError:
        return False
    return True


class NamedCodec:
    """``name=value`` pairs joined by commas (inactive positions left out)."""

    kind = "named"

    def __init__(self, names: Sequence[str]):
        self.names = list(names)

    def format(self, values: Sequence[str | None]) -> str:
        return ",".join(f"{n}={v}" for n, v in zip(self.names, values) if v is not None)

    def parse(self, text: str) -> list[str | None]:
        given: dict[str, str] = {}
        for part in filter(None, text.split(",")):
            name, eq, value = part.partition("=")
            if not eq or name not in self.names:
                raise NASError(f"architecture {text!r}: {part!r} is not name=value with a name of the space")
            given[name] = value
        return [given.get(n) for n in self.names]
