"""The ``fewshot`` command: argv -> config -> engine."""

from fewshot.cli.main import main

__all__ = ["main"]
