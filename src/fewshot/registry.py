"""Names -> things: the one generic registry every layer uses, and checks of the options given to them."""

from __future__ import annotations

import inspect


def accepted_options(target) -> set[str] | None:
    """Keyword names that ``target`` (a class or function) takes, following ``**settings`` up the
    class hierarchy; ``None`` when it takes any keyword."""
    names: set[str] = set()
    for fn in [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]:
        params = inspect.signature(fn).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
    return None


def check_options(target, options: dict, what: str, reserved: tuple[str, ...] = ()) -> None:
    """One clear error for options ``target`` does not take (``--set algorithm_options.nonsense=1``)."""
    valid = accepted_options(target)
    if valid is None:
        return
    valid -= set(reserved)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown {what} option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid)) or 'none'}")
