"""Give freed heap memory back to the operating system after a large reconcile.

A reconcile of thousands of objects allocates tens of megabytes for a moment (the compiled config,
its JSON and gzip, one status per object). CPython frees them, but glibc's malloc keeps the pages
in its free lists, so the process's RSS stays at its peak for good. `malloc_trim(0)` returns them;
it costs a few milliseconds and runs once per (coalesced) reconcile. Not glibc (musl, macOS): a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """True when memory was handed back to the OS."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
