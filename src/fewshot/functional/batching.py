"""Running a one-task function over the task axis: ``vmap`` or a Python loop.

``vmap`` turns the B per-task calls into batched kernels (a win on accelerators,
where the per-task calls are launch-bound); on CPU the plain loop is usually as fast
and uses less memory, so ``mode="auto"`` picks the loop on CPU and ``vmap`` elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

MODES = ("auto", "vmap", "loop")
log = logging.getLogger(__name__)


def resolve_mode(mode: str, device: torch.device | str) -> str:
    """``"vmap"`` or ``"loop"`` for ``mode`` on ``device`` (``"auto"``: loop on CPU only)."""
    if mode not in MODES:
        raise ValueError(f"task_batching must be one of {MODES}, got {mode!r}")
    if mode == "auto":
        return "loop" if torch.device(device).type == "cpu" else "vmap"
    return mode


def loop_tasks(fn: Callable[..., Any], num_shared: int) -> Callable[..., Any]:
    """``fn(*shared, *task_args)`` for one task -> the same over a leading task axis of
    the ``task_args`` (tensors [B, ...]), outputs stacked to [B, ...]."""

    def batched(*args: Any) -> Any:
        shared, tasks = args[:num_shared], args[num_shared:]
        outs = [fn(*shared, *(t[i] for t in tasks)) for i in range(tasks[0].shape[0])]
        leaves, spec = zip(*(pytree.tree_flatten(o) for o in outs))
        return pytree.tree_unflatten([torch.stack(ls) for ls in zip(*leaves)], spec[0])

    return batched


def vmap_tasks(fn: Callable[..., Any], num_shared: int, randomness: str = "different") -> Callable[..., Any]:
    """Like :func:`loop_tasks` with ``torch.func.vmap``; ``randomness="different"``
    draws independent dropout masks per task, as the loop does."""

    def batched(*args: Any) -> Any:
        in_dims = (None,) * num_shared + (0,) * (len(args) - num_shared)
        return torch.func.vmap(fn, in_dims=in_dims, randomness=randomness)(*args)

    return batched


class TaskBatcher:
    """Calls ``fn(*shared, *task_args)`` for every task along axis 0 of ``task_args``.

    ``mode``: ``"auto"`` (loop on CPU, vmap elsewhere, decided per call from the
    device of the first task tensor), ``"vmap"`` or ``"loop"``. ``compile``: wrap
    with ``torch.compile`` (``True`` or a dict of its options) - the per-task
    function in loop mode, the vmapped function in vmap mode. Compiled variants are
    built on first use and kept. A compiled call that fails (no working C++ compiler, an
    operator the compiler cannot lower) is logged once and the batcher runs eagerly from then
    on: the per-task function is pure, so running the call again eagerly gives its result.
    """

    def __init__(self, fn: Callable[..., Any], num_shared: int, mode: str = "auto", compile: bool | dict = False):
        resolve_mode(mode, "cpu")  # validate early
        self.fn, self.num_shared, self.mode = fn, num_shared, mode
        self.compile_options = ({} if compile is True else dict(compile)) if compile else None
        self._cache: dict[str, Callable[..., Any]] = {}

    def __call__(self, *args: Any) -> Any:
        task_args: tuple[Tensor, ...] = args[self.num_shared :]
        mode = resolve_mode(self.mode, task_args[0].device)
        if mode not in self._cache:
            self._cache[mode] = self._build(mode)
        if self.compile_options is None:
            return self._cache[mode](*args)
        try:
            return self._cache[mode](*args)
        except Exception as e:  # torch.compile's failures come as many exception types
            reason = (str(e).strip().splitlines() or [""])[0][:200]
            log.warning("compile: the compiled per-task function failed (%s: %s); running eagerly", type(e).__name__,
                        reason)  # fmt: skip
            self.compile_options = None
            self._cache.clear()
            return self(*args)

    def _build(self, mode: str) -> Callable[..., Any]:
        options = self.compile_options
        if mode == "vmap":
            batched = vmap_tasks(self.fn, self.num_shared)
            return batched if options is None else torch.compile(batched, **options)
        fn = self.fn if options is None else torch.compile(self.fn, **options)
        return loop_tasks(fn, self.num_shared)
