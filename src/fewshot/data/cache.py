"""A user cache of decoded datasets: safetensors files keyed by their sources and options."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from fewshot.files import write_atomically


def cache_dir() -> Path:
    """``$FEWSHOT_CACHE``, else ``$XDG_CACHE_HOME/fewshot``, else ``~/.cache/fewshot``."""
    if os.environ.get("FEWSHOT_CACHE"):
        return Path(os.environ["FEWSHOT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fewshot"


def source_fingerprint(paths) -> list:
    """What identifies source files cheaply: resolved path, size and modification time."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return out


def cache_key(kind: str, **parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return f"{kind}-{hashlib.sha256(blob).hexdigest()[:20]}"


def atomic_save(tensors: dict[str, Tensor], path: Path, metadata: dict | None = None) -> None:
    """Write a safetensors file under a temporary name, then rename: never half-written."""
    write_atomically(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata))


def cached(key: str, build: Callable[[], tuple[dict[str, Tensor], dict]]) -> tuple[dict[str, Tensor], dict]:
    """Tensors and JSON metadata for ``key``: read from the cache, or built and stored.

    ``build()`` returns ``(tensors, metadata)``; metadata must be JSON-serialisable.
    A damaged cache file is rebuilt rather than trusted.
    """
    path = cache_dir() / f"{key}.safetensors"
    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("fewshot", "{}"))
            return load_file(str(path)), meta
        except (SafetensorError, OSError, ValueError):  # a damaged entry is rebuilt below
            path.unlink(missing_ok=True)
    tensors, meta = build()
    atomic_save(tensors, path, {"fewshot": json.dumps(meta)})
    return tensors, meta
