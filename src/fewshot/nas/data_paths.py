"""Where the shared benchmark tables are: ``FEWSHOT_SHARED_DATA`` or ``../shared/data`` beside the project."""

from __future__ import annotations

import os
from pathlib import Path

from fewshot.data.shared import shared_data_dir

NAS_BENCH_MACRO = "nas/nas-bench-macro_cifar10.json"


def nas_bench_macro_path() -> Path:
    """``$FEWSHOT_NAS_BENCH_MACRO`` or the JSON in the shared data folder."""
    if os.environ.get("FEWSHOT_NAS_BENCH_MACRO"):
        return Path(os.environ["FEWSHOT_NAS_BENCH_MACRO"])
    return shared_data_dir() / NAS_BENCH_MACRO
