"""keep_freed_memory: glibc serves large blocks from the heap and keeps them (CPU training speed)."""

import ctypes
import ctypes.util

import pytest
import torch
from tiny import config, trainer

import fewshot.engine.train as train_module
from fewshot.engine.memory import keep_freed_memory

MB = 1 << 20


class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]


def mallinfo2():
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    fn.restype = MallInfo2
    return fn()


def test_large_blocks_come_from_the_heap_and_stay_there():
    mallinfo2()  # skips off glibc
    assert keep_freed_memory()
    before = mallinfo2()
    block = torch.ones(64 * MB // 4)  # 64 MB: above glibc's largest mmap threshold (32 MB)
    during = mallinfo2()
    assert during.hblkhd - before.hblkhd < MB, "the block was mmapped"
    assert during.uordblks - before.uordblks >= 64 * MB
    del block
    after = mallinfo2()
    assert during.uordblks - after.uordblks >= 64 * MB - MB  # freed ...
    assert after.arena >= during.arena, "the heap was trimmed"  # ... and kept


@pytest.mark.parametrize("keep, device_calls", [(True, 1), (False, 0)])
def test_trainer_keeps_freed_memory_on_cpu_unless_told_not_to(tmp_path, monkeypatch, keep, device_calls):
    calls = []
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: calls.append(1) or True)
    trainer(config(tmp_path, keep_freed_memory=keep))
    assert len(calls) == device_calls
