"""Reproducing the published few-shot tables: an application of the library that the core never imports.

``rows`` (what is reproduced and the published numbers), ``measure`` (train and evaluate a row),
``records`` (the ``results/*.json`` records), ``table`` (``docs/results.md``), ``cli`` (the command line
of ``benchmarks/reproduce.py``).
"""

from fewshot.reproduce.cli import main

__all__ = ["main"]
