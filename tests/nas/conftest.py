"""Fixtures of the NAS tests: small synthetic tables and the real NAS-Bench-Macro (skipped when absent)."""

import os
from pathlib import Path

import pytest
from nas_tables import write_choice_table

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def table_3x4(tmp_path) -> Path:
    """A 3^4 choice-string table with one run per architecture and a unique optimum (2222)."""
    return write_choice_table(tmp_path / "table.csv", positions=4, choices=3, runs=1)


@pytest.fixture(scope="session")
def macro_path() -> Path:
    path = SHARED_DATA / "nas" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"NAS-Bench-Macro not found at {path} (set FEWSHOT_SHARED_DATA)")
    os.environ.setdefault("FEWSHOT_SHARED_DATA", str(SHARED_DATA))
    return path
