"""Give the heap's free pages back to the system after a burst.

Converging thousands of objects allocates far more than it keeps (watch events with their
managedFields, status writes, compile output). glibc keeps freed chunks for reuse, so the process
stays near its peak long after: at 5,000 models 21 MB of glibc's heap was free and `malloc_trim(0)`
gave back 18.5 MB of RSS (docs/benchmarks.md, issue 15 third pass). It costs about a millisecond,
so it runs on a timer rather than after each of many small runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("aimm_operator.heap")

TRIM_INTERVAL_S = 20.0


def _libc_trim() -> Callable[[], bool] | None:
    try:
        call = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim this way
        return None
    call.argtypes = [ctypes.c_size_t]
    call.restype = ctypes.c_int
    return lambda: bool(call(0))


def trim() -> bool:
    """Return free heap pages to the system; True when some were (False: none, or not glibc)."""
    call = _libc_trim()
    return call() if call is not None else False


async def trim_forever(interval_s: float = TRIM_INTERVAL_S) -> None:
    """Trim every `interval_s` until cancelled."""
    call = _libc_trim()
    if call is None:
        log.info("not glibc: free heap pages are not trimmed")
        return
    while True:
        await asyncio.sleep(interval_s)
        call()
