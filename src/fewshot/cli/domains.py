"""Runs and presets of application packages behind the core's own commands.

A preset or a run's ``config.json`` that names a ``domain`` (``domain: molecules``) belongs to that
package's command: ``fewshot train --config fsmol-protonet ...`` is ``fewshot molecules train --config
fsmol-protonet ...``, and ``fewshot evaluate RUN ...`` of such a run is ``fewshot molecules evaluate
RUN ...``. A package's presets sit in ``presets/`` beside its command's module package; nothing is
imported to find them.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

from fewshot.engine.config import presets_dir
from fewshot.registry import COMMANDS

RUN_COMMANDS = ("evaluate", "predict", "serve", "plot")


def application_presets() -> dict[str, str]:
    """Preset name -> domain, for the presets of application packages that name a ``domain``."""
    found: dict[str, str] = {}
    packages = {COMMANDS.module(command).rpartition(".")[0] for command in COMMANDS.names()} - {""}
    for package in sorted(packages):  # several commands may share one package (metaopt, tune)
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted((Path(folder) / "presets").glob("*.yaml")):
                domain = _domain(path)
                if domain:
                    found.setdefault(path.stem, domain)
    return found


def _domain(path: Path) -> str | None:
    try:
        text = path.read_text()
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return None  # the core command reports what is wrong with it
    domain = values.get("domain") if isinstance(values, dict) else None
    return domain if isinstance(domain, str) and domain in COMMANDS else None


def _value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def domain_of(argv: list[str]) -> str | None:
    """The application command that ``fewshot ARGV`` belongs to, or None for the core's own."""
    if not argv:
        return None
    command, rest = argv[0], argv[1:]
    if command == "train":
        if "--resume" in rest:
            return _domain(Path(_value(rest, "--out") or "runs/latest") / "config.json")
        config = _value(rest, "--config")
        if config is None:
            return None
        if Path(config).is_file():
            return _domain(Path(config))
        if any((presets_dir() / f"{config}{suffix}").is_file() for suffix in (".yaml", ".toml")):
            return None
        return application_presets().get(config)
    if command in RUN_COMMANDS:
        runs = (Path(arg) / "config.json" for arg in rest if not arg.startswith("-"))
        return next((d for d in map(_domain, runs) if d), None)
    return None
