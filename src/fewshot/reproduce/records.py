"""The ``results/<row>-<cell>.json`` records: writing one, the machine it names, and the command that remakes it."""

from __future__ import annotations

import json
import os
import platform
import shlex
from pathlib import Path

import torch


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, no GPU (torch {torch.__version__})"
    )


LOCAL_OPTIONS = ("--runs", "--results", "--data-root")


def command(argv: list[str]) -> str:
    """The command that reproduces a record, less the options that only say where files are."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LOCAL_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LOCAL_OPTIONS)):
            kept.append(arg)
    return "python benchmarks/reproduce.py " + shlex.join(kept)


def shown_command(record: dict) -> str:
    """A record's command as the table shows it (records made before ``command`` kept local paths)."""
    return command(shlex.split(record["command"])[2:])


def write(folder: str, name: str, record: dict) -> None:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
