"""Imports flow downward only (DESIGN.md): data never imports algorithms, algorithms never engine..."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fewshot"
# what each layer may import from fewshot, besides itself
ALLOWED = {
    "data": {"registry"},
    "functional": {"data", "registry"},
    "nn": {"registry"},
    "algorithms": {"data", "functional", "nn", "registry"},
    "engine": {"data", "algorithms", "functional", "nn", "registry"},
    "serve": {"data", "algorithms", "functional", "nn", "engine", "registry", "deploy"},
}


def fewshot_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fewshot."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fewshot.")}
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_flow_downward(layer):
    for path in (SRC / layer).rglob("*.py"):
        wrong = fewshot_imports(path) - ALLOWED[layer] - {layer}
        assert not wrong, f"{path.relative_to(SRC)} imports fewshot.{', fewshot.'.join(sorted(wrong))}"
