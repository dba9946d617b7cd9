"""Where the shared benchmark tables are: ``FEWSHOT_SHARED_DATA`` or ``../shared/data`` beside the project."""

from __future__ import annotations

import os
from pathlib import Path

NAS_BENCH_MACRO = "nas/nas-bench-macro_cifar10.json"


def shared_data_dir() -> Path:
    """``$FEWSHOT_SHARED_DATA``, else ``../shared/data`` from the working directory or from the source checkout."""
    if os.environ.get("FEWSHOT_SHARED_DATA"):
        return Path(os.environ["FEWSHOT_SHARED_DATA"])
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = root.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


def nas_bench_macro_path() -> Path:
    """``$FEWSHOT_NAS_BENCH_MACRO`` or the JSON in the shared data folder."""
    if os.environ.get("FEWSHOT_NAS_BENCH_MACRO"):
        return Path(os.environ["FEWSHOT_NAS_BENCH_MACRO"])
    return shared_data_dir() / NAS_BENCH_MACRO
