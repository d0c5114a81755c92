"""`asyncio.timeout(delay)` for the upstream exchange of every request, at a lower cost.

The same contract: the block's task is cancelled when the delay passes, and the cancellation
leaves the block as `TimeoutError` unless someone else also cancelled the task (then it stays a
`CancelledError`). What it saves (docs/benchmarks.md, sixth pass): CPython 3.11's
`asyncio.timeout` looks the running loop up three times (each lookup is a `getpid` syscall, the
loop's check after a fork) and walks an enum state machine; and each exchange armed and cancelled
a timer of its own (a libuv timer under uvloop, ~2 % of a plain request's samples). Here a pool's
exchanges share one timer (`Deadlines`), armed for the soonest deadline: exchanges end long before
their timeout, so it fires about once per timeout period and finds the soonest of those still
running.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """Running deadlines (any hashable key: an exchange's `Deadline`, a stream's body waiter) and
    the one timer for them, armed for the soonest; `expire(key)` is called for each that passes."""

    __slots__ = ("_at", "_expire", "_loop", "_running", "_timer")

    def __init__(self, expire: Callable[[K], None]) -> None:
        self._expire = expire
        self._running: dict[K, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's (a pool may outlive a loop)
        self._at = math.inf

    def add(self, key: K, loop: asyncio.AbstractEventLoop, at: float) -> None:
        self._running[key] = at
        if at < self._at or loop is not self._loop:
            self._arm(loop, at)

    def discard(self, key: K) -> None:
        self._running.pop(key, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at, self._loop = at, loop
        self._timer = loop.call_at(at, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._at = None, math.inf
        now = loop.time()
        soonest = math.inf
        for key, at in list(self._running.items()):
            if at <= now:
                del self._running[key]
                self._expire(key)
            else:
                soonest = min(soonest, at)
        if soonest < math.inf:
            self._arm(loop, soonest)


class Deadline:
    """`async with Deadline(pool_deadlines, delay):` as `async with asyncio.timeout(delay):`."""

    __slots__ = ("_cancelling", "_delay", "_fired", "_task", "_timers")

    def __init__(self, timers: Deadlines[Deadline], delay: float) -> None:
        self._timers, self._delay = timers, delay
        self._fired = False

    async def __aenter__(self) -> Deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # by loop: no second lookup
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._timers.add(self, loop, loop.time() + self._delay)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timers.discard(self)
        if self._fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc  # ours alone: the block timed out

    def expire(self) -> None:
        self._task.cancel()
        self._fired = True
