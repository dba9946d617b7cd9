"""Problems by name or path: built-in tabular benchmarks and user tables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fewshot.nas.data_paths import nas_bench_macro_path
from fewshot.nas.errors import NASError
from fewshot.nas.spaces.tabular import TabularBenchmark, load_table

TABLE_SUFFIXES = (".json", ".csv")


@lru_cache(maxsize=4)
def _nas_bench_macro(path: str) -> TabularBenchmark:
    return load_table(path, arch_column="arch", metric="test_acc", name="nas-bench-macro")


def nas_bench_macro() -> TabularBenchmark:
    """NAS-Bench-Macro on CIFAR-10: 3^8 architectures, three test accuracies each (report: their mean)."""
    path = nas_bench_macro_path()
    if not path.is_file():
        raise NASError(f"NAS-Bench-Macro not found at {path} (set FEWSHOT_NAS_BENCH_MACRO or FEWSHOT_SHARED_DATA)")
    return _nas_bench_macro(str(path))


BUILTIN_TABLES = {"nas-bench-macro": nas_bench_macro}


def get_benchmark(
    space: str,
    arch_column: str | None = None,
    metric: str | None = None,
    report_metric: str | None = None,
    mode: str = "max",
) -> TabularBenchmark:
    """A built-in benchmark by name, or a CSV/JSON table by path with its columns named."""
    if space in BUILTIN_TABLES:
        if arch_column or metric or report_metric:
            raise NASError(f"--arch-column/--metric/--report-metric apply to table files, not to {space!r}")
        return BUILTIN_TABLES[space]()
    path = Path(space)
    if path.suffix.lower() in TABLE_SUFFIXES and path.exists():
        return load_table(path, arch_column, metric, report_metric, mode)
    if path.suffix.lower() in TABLE_SUFFIXES:
        raise NASError(f"table {path} does not exist")
    raise NASError(f"unknown space {space!r}; valid: {', '.join(BUILTIN_TABLES)}, darts, or a .csv/.json table path")
