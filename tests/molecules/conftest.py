import os
from pathlib import Path

import pytest
from molhelpers import write_table

try:  # without the molecules extra (rdkit, scikit-learn) these tests are not collected
    import rdkit  # noqa: F401
    import sklearn  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    return write_table(tmp_path / "tiny.csv")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty featurisation cache of this test's own."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEWSHOT_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def molecules_data() -> Path:
    root = SHARED_DATA / "molecules"
    if not (root / "tox21.csv").exists():
        pytest.skip(f"shared molecule data not found at {root} (set FEWSHOT_SHARED_DATA)")
    return root
