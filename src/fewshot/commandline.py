"""What the ``fewshot`` commands share: a parser whose errors are exceptions, ``KEY=VALUE``
settings, and an entry point that ends bad input in one line on stderr (exit status 2) and
Ctrl-C in status 130, never in a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

import yaml

from fewshot.files import load_yaml

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(ValueError):
    """Bad input on the command line."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors raised as ``UsageError`` (printed as one line) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_settings(pairs: list[str], error: type[ValueError] = UsageError) -> dict:
    """``{key: value}`` from ``KEY=VALUE`` texts, each value read as YAML (``0.1``, ``true``, ``[1, 2]``)."""
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise error(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = load_yaml(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def one_line_errors(prog: str, run: Callable[[], int], errors: tuple[type[BaseException], ...] = (ValueError,)) -> int:
    """``run()``'s exit status; an exception of ``errors`` is printed as ``PROG: error: ...`` (status 2)."""
    try:
        return run()
    except errors as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
