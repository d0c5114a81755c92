"""Events posted off the reconcile path.

Converging a thousand objects writes a thousand statuses and then posts their Events ("became
Ready"). A reconcile run that posted them itself would hold its namespace for as long, and the next
change (an edit) would wait behind them: Events are news, not state, so a few workers post them from
a bounded queue while the next reconcile already runs. Each object's status is written before its
Events are queued, so an Event recorded in status (a budget threshold) is never posted twice.

While any run's status writes are in flight (`writing`), the workers wait: in a burst the Events of
one run competed with the next run's status writes for the same API server (and the same API
Priority and Fairness flow), and statuses are what readers wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from aimm_operator.apply import emit_event
from aimm_operator.kube import Kube
from aimm_operator.metrics import OperatorMetrics
from aimm_operator.status import EventSpec

log = logging.getLogger("aimm_operator.events")


class EventSink:
    def __init__(
        self, kube: Kube, workers: int = 8, capacity: int = 20_000, metrics: OperatorMetrics | None = None
    ) -> None:
        self._kube = kube
        self.metrics = metrics or OperatorMetrics()  # status writes are counted here too (reconcile.py)
        self._queue: asyncio.Queue[tuple[dict[str, Any], EventSpec]] = asyncio.Queue(capacity)
        self._size = workers
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0  # Events not posted because the queue was full (logged)
        self._writers = 0  # status-write batches in flight: Events wait for them (see module doc)
        self._quiet = asyncio.Event()
        self._quiet.set()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold Event posts while the statuses in this block are written."""
        self._writers += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._writers -= 1
            if not self._writers:
                self._quiet.set()

    def post(self, involved: Mapping[str, Any], event: EventSpec) -> None:
        """Queue one Event on `involved` (an object reference); never waits."""
        if not self._workers:  # started on first use, inside the running loop
            self._workers = [asyncio.create_task(self._work(), name=f"events-{i}") for i in range(self._size)]
        try:
            self._queue.put_nowait((dict(involved), event))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "event %s on %s/%s dropped: queue full", event.reason, involved.get("kind"), involved.get("name")
            )

    async def _work(self) -> None:
        while True:
            involved, ev = await self._queue.get()
            try:
                await self._quiet.wait()
                await emit_event(self._kube, involved, ev.type, ev.reason, ev.message)
                self.metrics.events.inc()
            except Exception:  # emit_event logs API errors itself; anything else must not kill a worker
                log.exception("event %s not posted", ev.reason)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued Event was posted (or failed)."""
        if self._workers:
            await self._queue.join()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            log.warning("%d events not posted at shutdown", self._queue.qsize())
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
