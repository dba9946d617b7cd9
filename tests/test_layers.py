"""Imports flow downward only (DESIGN.md), and ``import fewshot`` stays light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fewshot"
CORE = {
    "registry",
    "files",
    "commandline",
    "data",
    "optim",
    "nn",
    "functional",
    "algorithms",
    "engine",
    "api",
    "deploy",
    "serve",
    "cli",
}
APPLICATIONS = {"nas", "metaopt", "molecules", "rl", "text", "reproduce"}  # packages the core never imports
# what each package or top-level module may import from fewshot, besides itself
ALLOWED = {
    "registry": set(),
    "files": set(),
    "commandline": {"files"},
    "data": {"registry", "files"},
    "optim": {"registry"},
    "nn": {"registry"},
    "functional": {"data", "optim", "registry"},
    "algorithms": {"data", "functional", "nn", "optim", "registry"},
    "engine": {"data", "algorithms", "functional", "nn", "optim", "registry", "files"},
    "api": {"data", "algorithms", "engine", "registry"},
    "deploy": {"data", "algorithms", "engine", "registry"},
    "serve": {"data", "algorithms", "functional", "nn", "engine", "registry", "deploy"},
    "cli": CORE - {"cli"},
    **{app: CORE - {"cli", "serve"} for app in APPLICATIONS},
    "rl": CORE - {"cli", "serve"} | {"text"},  # skills from a description: text encoders
    "molecules": CORE - {"cli"},  # its HTTP service shares the core's guards (fewshot.serve.guards)
}


def fewshot_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fewshot."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("fewshot.")}
    return found


def files(layer: str) -> list[Path]:
    return [SRC / f"{layer}.py"] if (SRC / f"{layer}.py").exists() else sorted((SRC / layer).rglob("*.py"))


def test_every_package_has_a_place_in_the_layers():
    present = {p.stem for p in SRC.glob("*.py")} | {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert present - {"__init__", "__main__"} <= set(ALLOWED), present - set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_flow_downward(layer):
    for path in files(layer):
        wrong = fewshot_imports(path) - ALLOWED[layer] - {layer}
        assert not wrong, f"{path.relative_to(SRC)} imports fewshot.{', fewshot.'.join(sorted(wrong))}"


OPTIONAL = (
    "fastapi",
    "uvicorn",
    "tensorboard",
    "rdkit",
    "sklearn",
    "optuna",
    "ray",
    "gymnasium",
    "mujoco",
    "tokenizers",
)


def test_import_fewshot_stays_light():
    code = "import sys, fewshot; print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'numpy'}))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    code = (
        "import sys, fewshot.api, fewshot.cli.main, fewshot.registry; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(OPTIONAL)!r}))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
