import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FEWSHOT_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's cache unless FEWSHOT_CACHE is set for them."""
    if "FEWSHOT_TEST_CACHE" in os.environ:
        os.environ["FEWSHOT_CACHE"] = os.environ["FEWSHOT_TEST_CACHE"]
    else:
        os.environ["FEWSHOT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(1)  # the suite is many small models: one thread each is fastest


@pytest.fixture(scope="session")
def omniglot_root() -> Path:
    """The real Omniglot release in ../shared/data/omniglot (skipped when absent)."""
    root = SHARED_DATA / "omniglot"
    if not (root / "images_background.zip").exists():
        pytest.skip(f"real Omniglot not found at {root} (set FEWSHOT_SHARED_DATA)")
    return root
