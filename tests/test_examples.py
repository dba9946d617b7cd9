"""The README's Python snippets are the scripts in examples/, and each script runs as is."""

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_every_readme_python_block_is_an_example():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    sources = [p.read_text() for p in EXAMPLES]
    assert blocks
    for block in blocks:
        assert any(block in source for source in sources), f"README block not in examples/: {block[:80]!r}"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEWSHOT_EXAMPLE_STEPS", "3")
    runpy.run_path(str(script), run_name="__main__")
    assert "95% CI" in capsys.readouterr().out
