"""Batched store writes off the request path (usage rows, audit records).

`record()` only appends to a bounded in-memory queue (no await, no I/O). One background task
writes batches every `flush_interval_s` or as soon as `batch_size` rows wait. When the queue is
full the row is dropped and counted: a slow database must never slow requests. `close()` (clean
shutdown, SIGTERM via the server's lifespan) writes everything still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from aimm_gateway.store.base import UsageStore
from aimm_gateway.store.rows import UsageRow

log = logging.getLogger("aimm.store")
T = TypeVar("T")


class BatchWriter(Generic[T]):
    """Rows of one kind, queued in memory and written by `insert` in batches by one task."""

    def __init__(
        self,
        insert: Callable[[Sequence[T]], Awaitable[None]],
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        queue_max: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
        on_write_error: Callable[[], None] | None = None,
        what: str = "usage",
    ) -> None:
        self._insert = insert
        self._what = what
        self._batch = batch_size
        self._interval = flush_interval_s
        self._queue: deque[T] = deque()
        self._max = queue_max
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_drop = on_drop or (lambda n: None)
        self._on_write_error = on_write_error or (lambda: None)
        self._stopping = False
        self.dropped = 0
        self.written = 0

    def record(self, row: T) -> None:
        if len(self._queue) >= self._max:
            self.dropped += 1
            self._on_drop(1)
            return
        self._queue.append(row)
        if len(self._queue) >= self._batch:
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"aimm-{self._what}-writer")

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):  # the interval passed: flush what is there
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write everything queued, in batches. A failed batch is put back (and retried next time)."""
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            try:
                await self._insert(batch)
            except Exception:
                log.exception("%s store write failed; %d rows kept for the next try", self._what, len(batch))
                self._on_write_error()
                self._queue.extendleft(reversed(batch))
                self._trim()
                return
            self.written += len(batch)

    def _trim(self) -> None:
        while len(self._queue) > self._max:
            self._queue.pop()
            self.dropped += 1
            self._on_drop(1)

    async def close(self) -> None:
        # Not cancelled: a write in flight (in a thread, for SQLite) finishes, then the rest is written.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()


class UsageWriter(BatchWriter[UsageRow]):
    """The usage rows' writer (requests and their attempts, one transaction per batch)."""

    def __init__(
        self,
        store: UsageStore,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        queue_max: int = 100_000,
        on_drop: Callable[[int], None] | None = None,
        on_write_error: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(store.insert, batch_size, flush_interval_s, queue_max, on_drop, on_write_error)
        self.store = store
