"""Ctrl-C and SIGTERM stop a training run cleanly: the first one finishes the step and saves, a second stops at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; what schedulers send before they preempt


def stop_on_signals(trainer) -> Callable[[], object]:
    """Until the returned function restores the previous handlers, the first Ctrl-C or SIGTERM sets
    ``trainer.stop_requested`` (the loop finishes its step, saves and exits cleanly); a second raises
    ``KeyboardInterrupt`` (stop at once)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True

    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    return lambda: [signal.signal(s, h) for s, h in previous.items()]
