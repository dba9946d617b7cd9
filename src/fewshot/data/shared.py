"""Where the shared benchmark data is: ``FEWSHOT_SHARED_DATA`` or ``../shared/data`` beside the project."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path:
    """``$FEWSHOT_SHARED_DATA``, else ``../shared/data`` beside the working directory or the source checkout."""
    if os.environ.get("FEWSHOT_SHARED_DATA"):
        return Path(os.environ["FEWSHOT_SHARED_DATA"])
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = root.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"
