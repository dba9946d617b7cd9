"""Categorical spaces: a list of named positions, each with a list of choices and optional conditions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fewshot.nas.errors import NASError
from fewshot.nas.spaces.base import SearchSpace
from fewshot.nas.spaces.codecs import INACTIVE, CellStringCodec, ChoiceStringCodec, NamedCodec

Choices = tuple[int, ...]  # one choice index per position, -1 where the position is inactive


@dataclass(frozen=True)
class Position:
    """A named position; active only when every earlier position named in ``when`` takes one of its values."""

    name: str
    choices: tuple[str, ...]
    when: Mapping[str, frozenset[str]] = field(default_factory=dict)


class CategoricalSpace(SearchSpace[Choices]):
    """Architectures are tuples of choice indices (``-1`` for an inactive position).

    A mutation changes one active position to another of its choices; positions that
    the change switches on take a random choice, those it switches off become inactive.
    """

    def __init__(self, positions: Sequence[Position], name: str = "categorical", codec=None):
        if not positions:
            raise NASError("a categorical space needs at least one position")
        self.positions = tuple(positions)
        self.name = name
        self._index = {p.name: i for i, p in enumerate(self.positions)}
        if len(self._index) != len(self.positions):
            raise NASError(f"space {name!r}: position names must be distinct")
        self._conditions: list[list[tuple[int, frozenset[int]]]] = []
        for i, p in enumerate(self.positions):
            if len(p.choices) < 1 or len(set(p.choices)) != len(p.choices):
                raise NASError(f"space {name!r}: position {p.name!r} needs distinct choices")
            conds = []
            for other, values in p.when.items():
                j = self._index.get(other)
                if j is None or j >= i:
                    raise NASError(
                        f"space {name!r}: condition of {p.name!r} must name an earlier position, not {other!r}"
                    )
                unknown = set(values) - set(self.positions[j].choices)
                if unknown:
                    raise NASError(f"space {name!r}: condition of {p.name!r} uses unknown values {sorted(unknown)}")
                conds.append((j, frozenset(self.positions[j].choices.index(v) for v in values)))
            self._conditions.append(conds)
        self.conditional = any(self._conditions)
        self.codec = codec or default_codec(self.positions)
        self._offsets = np.cumsum([0] + [len(p.choices) for p in self.positions])

    # -- structure ---------------------------------------------------------------------------------------------------
    def _active(self, i: int, arch: Sequence[int]) -> bool:
        return all(arch[j] in allowed for j, allowed in self._conditions[i])

    def _complete(self, arch: list[int], rng: np.random.Generator | None) -> Choices:
        """Repair in order: inactive positions -> -1, newly active ones -> a random (or the first) choice."""
        for i, p in enumerate(self.positions):
            if not self._active(i, arch):
                arch[i] = -1
            elif arch[i] < 0:
                arch[i] = int(rng.integers(len(p.choices))) if rng is not None else 0
        return tuple(arch)

    def contains(self, arch) -> bool:
        if not isinstance(arch, tuple) or len(arch) != len(self.positions):
            return False
        for i, p in enumerate(self.positions):
            active = self._active(i, arch)
            if (active and not 0 <= arch[i] < len(p.choices)) or (not active and arch[i] != -1):
                return False
        return True

    @property
    def size(self) -> int:
        if not self.conditional:
            return math.prod(len(p.choices) for p in self.positions)
        return self._count(0, [])

    def _count(self, i: int, prefix: list[int]) -> int:
        if i == len(self.positions):
            return 1
        if not self._active(i, prefix):
            return self._count(i + 1, prefix + [-1])
        return sum(self._count(i + 1, prefix + [c]) for c in range(len(self.positions[i].choices)))

    def all_architectures(self) -> list[Choices]:
        """Every member, in lexicographic order (for small spaces)."""
        out: list[Choices] = []

        def walk(i: int, prefix: list[int]) -> None:
            if i == len(self.positions):
                out.append(tuple(prefix))
            elif not self._active(i, prefix):
                walk(i + 1, prefix + [-1])
            else:
                for c in range(len(self.positions[i].choices)):
                    walk(i + 1, prefix + [c])

        walk(0, [])
        return out

    # -- moves -------------------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Choices:
        if not self.conditional:
            return tuple(int(rng.integers(len(p.choices))) for p in self.positions)
        return self._complete([-1] * len(self.positions), rng)

    def neighbours(self, arch: Choices) -> list[Choices]:
        out = []
        for i, p in enumerate(self.positions):
            if arch[i] < 0:
                continue
            for c in range(len(p.choices)):
                if c != arch[i]:
                    child = list(arch)
                    child[i] = c
                    out.append(self._complete(child, None) if self.conditional else tuple(child))
        return out

    def mutate(self, arch: Choices, rng: np.random.Generator) -> Choices:
        active = [i for i in range(len(self.positions)) if arch[i] >= 0 and len(self.positions[i].choices) > 1]
        if not active:
            return self.sample(rng)
        i = active[int(rng.integers(len(active)))]
        c = int(rng.integers(len(self.positions[i].choices) - 1))
        child = list(arch)
        child[i] = c + (c >= arch[i])  # any choice but the current one
        return self._complete(child, rng) if self.conditional else tuple(child)

    def crossover(self, a: Choices, b: Choices, rng: np.random.Generator) -> Choices:
        take_a = rng.random(len(self.positions)) < 0.5
        child = [x if t else y for x, y, t in zip(a, b, take_a)]
        return self._complete(child, rng) if self.conditional else tuple(child)

    def encode(self, arch: Choices) -> np.ndarray:
        v = np.zeros(int(self._offsets[-1]), dtype=np.float32)
        for i, c in enumerate(arch):
            if c >= 0:
                v[self._offsets[i] + c] = 1.0
        return v

    # -- strings -----------------------------------------------------------------------------------------------------
    def values(self, arch: Choices) -> list[str | None]:
        return [None if c < 0 else p.choices[c] for p, c in zip(self.positions, arch)]

    def to_string(self, arch: Choices) -> str:
        return self.codec.format(self.values(arch))

    def parse(self, text: str) -> Choices:
        if not isinstance(text, str):
            raise NASError(f"an architecture string is expected, got {text!r}")
        values = self.codec.parse(text.strip())
        indices: list[int] = []
        for p, v in zip(self.positions, values):
            if v is None:
                indices.append(-1)
            elif v in p.choices:
                indices.append(p.choices.index(v))
            else:
                raise NASError(f"architecture {text!r}: {v!r} is not a choice of {p.name!r} ({', '.join(p.choices)})")
        arch = tuple(indices)
        if not self.contains(arch):
            raise NASError(f"architecture {text!r} does not satisfy the conditions of space {self.name!r}")
        return arch

    def describe(self) -> dict:
        """The space as a plain dict (the YAML form)."""
        return {
            "name": self.name,
            "positions": [
                {
                    "name": p.name,
                    "choices": list(p.choices),
                    **({"when": {k: sorted(v) for k, v in p.when.items()}} if p.when else {}),
                }
                for p in self.positions
            ],
        }


def default_codec(positions: Sequence[Position]):
    """Choice strings when every choice is one character (and none is ``-``), else named strings."""
    if all(len(c) == 1 and c != INACTIVE for p in positions for c in p.choices):
        return ChoiceStringCodec(len(positions))
    return NamedCodec([p.name for p in positions])


def cell_space(ops: Sequence[str], nodes: int = 3, name: str = "cell") -> CategoricalSpace:
    """A NAS-Bench-201-style cell space: one operation per edge j->i, printed as a cell string."""
    codec = CellStringCodec(nodes)
    return CategoricalSpace([Position(e, tuple(ops)) for e in codec.edge_names()], name=name, codec=codec)


def space_from_dict(spec: Mapping, name: str | None = None) -> CategoricalSpace:
    """A categorical space from its YAML/JSON form.

    ``positions`` is a mapping ``name -> [choices]`` or ``name -> {choices: [...], when: {other: [values]}}``,
    or a list of ``{name, choices, when}``; choices are read as strings.
    """
    raw = spec.get("positions") if isinstance(spec, Mapping) else None
    if raw is None:
        raise NASError("a categorical space needs a 'positions' entry")
    items = (
        list(raw.items()) if isinstance(raw, Mapping) else [(r.get("name"), r) for r in raw if isinstance(r, Mapping)]
    )
    if not isinstance(raw, Mapping) and len(items) != len(raw):
        raise NASError("each entry of 'positions' must be a mapping with name and choices")
    positions = []
    for pname, body in items:
        choices = body if isinstance(body, list) else body.get("choices") if isinstance(body, Mapping) else None
        if not pname or not isinstance(choices, list) or not choices:
            raise NASError(f"position {pname!r} needs a non-empty list of choices")
        when = body.get("when", {}) if isinstance(body, Mapping) else {}
        if not isinstance(when, Mapping):
            raise NASError(f"position {pname!r}: 'when' must map earlier positions to lists of values")
        when = {str(k): frozenset(str(x) for x in (v if isinstance(v, list) else [v])) for k, v in when.items()}
        positions.append(Position(str(pname), tuple(str(c) for c in choices), when))
    fmt = spec.get("format")
    codec: CellStringCodec | NamedCodec | None = None
    if fmt == "cell-string":
        nodes = int((math.isqrt(8 * len(positions) + 1) - 1) // 2)
        if nodes * (nodes + 1) // 2 != len(positions):
            raise NASError(f"format cell-string needs a triangular number of positions, got {len(positions)}")
        codec = CellStringCodec(nodes)
    elif fmt == "named":
        codec = NamedCodec([p.name for p in positions])
    elif fmt not in (None, "choice-string"):
        raise NASError(f"unknown format {fmt!r}; valid: choice-string, cell-string, named")
    return CategoricalSpace(positions, name=str(spec.get("name", name or "categorical")), codec=codec)


def load_space_file(path: str | Path) -> CategoricalSpace:
    """A categorical space from a YAML or JSON file."""
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise NASError(f"cannot read space file {path}: {e}") from None
    if not isinstance(spec, Mapping):
        raise NASError(f"space file {path} must hold a mapping with 'positions'")
    return space_from_dict(spec, name=path.stem)
