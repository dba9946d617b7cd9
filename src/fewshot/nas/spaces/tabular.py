"""Tabular benchmarks: architectures looked up in a table of measured metrics.

NAS-Bench-Macro's JSON (``{"01201002": {"test_acc": [3 runs], "mean_acc": ...}}``) and any
CSV or JSON table with an architecture column and a metric column. Rows that repeat an
architecture, or a cell holding a list, are several runs of it: a query returns one run
drawn by the search's generator (as training it again would), the report uses the mean.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from fewshot.nas.errors import NASError
from fewshot.nas.problem import MODES, Evaluation
from fewshot.nas.spaces.base import SearchSpace
from fewshot.nas.spaces.categorical import CategoricalSpace, Choices, Position, cell_space
from fewshot.nas.spaces.codecs import is_cell_string, parse_cell_string

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class TableSpace(SearchSpace[Choices]):
    """A categorical space restricted to the architectures a table holds.

    When the table covers the whole product space this is the product space; otherwise
    samples are table rows and mutations move only to neighbours in the table.
    """

    def __init__(self, base: CategoricalSpace, members: Iterable[Choices], name: str):
        self.base, self.name = base, name
        self.members = list(dict.fromkeys(members))  # table order, for uniform sampling
        self._member_set = set(self.members)
        self.complete = len(self._member_set) == base.size

    @property
    def size(self) -> int:
        return len(self.members)

    def contains(self, arch) -> bool:
        return arch in self._member_set

    def sample(self, rng):
        if self.complete:
            return self.base.sample(rng)
        return self.members[int(rng.integers(len(self.members)))]

    def neighbours(self, arch):
        near = self.base.neighbours(arch)
        return near if self.complete else [a for a in near if a in self._member_set]

    def mutate(self, arch, rng):
        if self.complete:
            return self.base.mutate(arch, rng)
        return super().mutate(arch, rng)

    def crossover(self, a, b, rng):
        for _ in range(20):
            child = self.base.crossover(a, b, rng)
            if child in self._member_set:
                return child
        return a

    def encode(self, arch):
        return self.base.encode(arch)

    def to_string(self, arch) -> str:
        return self.base.to_string(arch)

    def parse(self, text: str):
        arch = self.base.parse(text)
        if arch not in self._member_set:
            raise NASError(f"architecture {text!r} is not in the table of {self.name!r}")
        return arch


class TabularBenchmark:
    """A :class:`~fewshot.nas.problem.Problem` answered by table lookup.

    runs: arch -> the metric's runs; report: arch -> mean of the report metric;
    ``optimum`` is the best report value in the table.
    """

    def __init__(
        self,
        name: str,
        space: TableSpace,
        runs: dict[Choices, np.ndarray],
        report: dict[Choices, float],
        mode: str = "max",
        metric_name: str = "metric",
        report_name: str | None = None,
    ):
        if mode not in MODES:
            raise NASError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        self.name, self.space, self.runs, self.report, self.mode = name, space, runs, report, mode
        self.metric_name, self.report_name = metric_name, report_name or metric_name
        pick = max if mode == "max" else min
        self.optimum = pick(report.values())
        self.optimum_archs = [space.to_string(a) for a, v in report.items() if v == self.optimum]

    def evaluate(self, arch, rng: np.random.Generator) -> Evaluation:
        runs = self.runs[arch]
        run = int(rng.integers(len(runs))) if len(runs) > 1 else 0
        return Evaluation(float(runs[run]), self.report[arch], {"run": run})

    def describe(self) -> dict:
        return {
            "name": self.name,
            "architectures": self.space.size,
            "format": self.space.base.codec.kind,
            "metric": self.metric_name,
            "report_metric": self.report_name,
            "mode": self.mode,
            "optimum": self.optimum,
            "optimum_archs": self.optimum_archs,
        }


def infer_space(strings: Sequence[str], name: str) -> CategoricalSpace:
    """The categorical space spanned by architecture strings: cell strings or fixed-length choice strings."""
    if not strings:
        raise NASError(f"table {name!r} has no architectures")
    first = strings[0]
    if is_cell_string(first):
        ops_per = [parse_cell_string(s) for s in strings]
        lengths = {len(o) for o in ops_per}
        if len(lengths) != 1:
            raise NASError(f"table {name!r}: cell strings with different numbers of edges ({sorted(lengths)})")
        seen = {op for ops in ops_per for op in ops}
        ordered = [op for op in NB201_OPS if op in seen] + sorted(seen - set(NB201_OPS))
        edges = lengths.pop()
        nodes = next(n for n in range(1, edges + 1) if n * (n + 1) // 2 == edges)
        return cell_space(ordered, nodes=nodes, name=name)
    lengths = {len(s) for s in strings}
    if len(lengths) != 1:
        bad = next(s for s in strings if len(s) != len(first))
        raise NASError(
            f"table {name!r}: architecture {bad!r} does not parse: neither a cell string "
            f"(|op~0|+|op~0|op~1|...) nor a choice string of length {len(first)} like {first!r}"
        )
    if "-" in "".join(strings):
        raise NASError(f"table {name!r}: '-' marks an inactive position and cannot be a choice")
    choices = [sorted({s[i] for s in strings}) for i in range(len(first))]
    return CategoricalSpace([Position(f"p{i}", tuple(c)) for i, c in enumerate(choices)], name=name)


def _numbers(value, where: str) -> list[float]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise NASError(f"{where}: {value!r} is not a number or a list of numbers") from None
        else:
            value = text
    items = value if isinstance(value, list) else [value]
    try:
        out = [float(x) for x in items]
    except (TypeError, ValueError):
        raise NASError(f"{where}: {value!r} is not a number or a list of numbers") from None
    if not out or not np.all(np.isfinite(out)):
        raise NASError(f"{where}: {value!r} is empty or not finite")
    return out


def _read_records(path: Path, arch_column: str | None) -> tuple[list[dict], str, list[str]]:
    """Rows as dicts, the architecture column used, and the columns found."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
        else:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                data = list(reader)
                columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise NASError(f"cannot read table {path}: {e}") from None
    if path.suffix.lower() == ".json":
        if isinstance(data, dict):  # NAS-Bench-Macro form: {arch: {column: value}}
            if not all(isinstance(v, dict) for v in data.values()):
                raise NASError(f"table {path}: a JSON mapping must map architecture strings to records")
            key = arch_column or "arch"
            data = [{key: k, **v} for k, v in data.items()]
        elif not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise NASError(f"table {path}: JSON must be a list of records or a mapping arch -> record")
        columns = list(dict.fromkeys(c for r in data[:1000] for c in r))
    if arch_column is None:
        arch_column = "arch" if "arch" in columns else None
    if arch_column is None or arch_column not in columns:
        raise NASError(f"table {path} has no architecture column {arch_column!r}; columns: {', '.join(columns)}")
    return data, arch_column, columns


def load_table(
    path: str | Path,
    arch_column: str | None = None,
    metric: str | None = None,
    report_metric: str | None = None,
    mode: str = "max",
    name: str | None = None,
) -> TabularBenchmark:
    """A tabular benchmark from a CSV or JSON file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise NASError(f"table {path} does not exist")
    rows, arch_column, columns = _read_records(path, arch_column)
    if metric is None:
        raise NASError(f"table {path}: name the metric column (--metric); columns: {', '.join(columns)}")
    for col in dict.fromkeys([metric, report_metric or metric]):
        if col not in columns:
            raise NASError(f"table {path} has no column {col!r}; columns: {', '.join(columns)}")
    runs: dict[str, list[float]] = {}
    reports: dict[str, list[float]] = {}
    for i, row in enumerate(rows):
        arch = row.get(arch_column)
        if not isinstance(arch, str) or not arch.strip():
            raise NASError(f"table {path}, row {i + 1}: empty or non-string architecture {arch!r}")
        arch = arch.strip()
        runs.setdefault(arch, []).extend(_numbers(row.get(metric), f"table {path}, row {i + 1}, column {metric!r}"))
        if report_metric:
            where = f"table {path}, row {i + 1}, column {report_metric!r}"
            reports.setdefault(arch, []).extend(_numbers(row.get(report_metric), where))
    name = name or path.stem
    base = infer_space(list(runs), name)
    archs = {s: base.parse(s) for s in runs}
    if len(set(archs.values())) != len(archs):
        raise NASError(f"table {path}: two architecture strings name the same architecture")
    run_arrays = {archs[s]: np.asarray(v, dtype=np.float64) for s, v in runs.items()}
    means = {archs[s]: float(np.mean(v)) for s, v in (reports or runs).items()}
    space = TableSpace(base, run_arrays, name)
    return TabularBenchmark(name, space, run_arrays, means, mode, metric, report_metric)
