"""One error type for bad input to ``fewshot.rl``, and the install hint for its optional dependencies."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'fewshot[rl]'  (gymnasium and the mujoco wheel, which ships the physics engine)"


class RLError(ValueError):
    """Bad input to ``fewshot.rl`` (an unknown family, a task parameter out of range, a missing
    dependency, a non-finite rollout): one message naming the problem."""


def require(module: str, what: str) -> ModuleType:
    """``import module``, or an ``RLError`` naming ``what`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise RLError(f"{what} needs the {module!r} package, which cannot be imported ({e}); {INSTALL_HINT}") from None
