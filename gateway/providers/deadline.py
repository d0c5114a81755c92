"""`asyncio.timeout(delay)` for the upstream exchange of every request, at a lower cost.

The same contract: the block's task is cancelled when the delay passes, and the cancellation
leaves the block as `TimeoutError` unless someone else also cancelled the task (then it stays a
`CancelledError`). What it saves: CPython 3.11's `asyncio.timeout` looks the running loop up
three times (each lookup is a `getpid` syscall: the loop check after a fork) and walks an enum
state machine; this looks it up once. ~2.6 % of a plain request's samples were in
`asyncio.timeout` (docs/benchmarks.md, sixth pass).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadline:
    __slots__ = ("_cancelling", "_delay", "_fired", "_handle", "_task")

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._fired = False

    async def __aenter__(self) -> Deadline:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # by loop: no second lookup
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._handle = loop.call_at(loop.time() + self._delay, self._expire)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._handle.cancel()
        if self._fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc  # ours alone: the block timed out

    def _expire(self) -> None:
        self._task.cancel()
        self._fired = True
