"""Keep freed CPU memory in the process, so that training steps do not page-fault it back in.

glibc serves every block above its mmap threshold (a few MB: a Conv4's 28x28 activations
of 100 images are 20 MB) with a fresh ``mmap`` and returns it at ``free``; each training
step then touches its activations' pages anew, one page fault per 4 KB. Serving them from
the heap and never trimming it lets the next step reuse the same pages
(``python benchmarks/cpu_memory_speed.py`` measures the gain). The cost: the process keeps
its peak memory until it exits.
"""

from __future__ import annotations

import ctypes
import functools
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache  # once per process: every Trainer asks
def keep_freed_memory() -> bool:
    """Tell glibc's malloc to serve large blocks from the heap and never return it to the OS.

    Process-wide and irreversible in effect; the trainer calls it for CPU runs. Returns
    whether it applied (False off Linux or without glibc's ``mallopt``).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the loaded libc's, no library search
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
