"""Bookkeeping that may wait until this worker would otherwise wait.

An answer leaves settle work behind: the ledger folds its statistics (router, per-model series,
live stats), the access log writes its line. Scheduled with `loop.call_soon`, that work runs in
the loop iteration after the answer's task ends; at concurrency 1 that is after the caller's
next request has been read from the socket and before its task starts, so it sits on that
request's critical path (~44 µs of ~100 µs between `data_received` and the task). Held here
instead, it runs while the next request waits for its upstream: the h1 client calls
`upstream_waiting` right after writing a request, before awaiting the answer, and the worker
idles there anyway. A timer runs held work at the latest `delay_s` after the first job was held
(clients without the hook, no next request).

Whoever shows what the jobs fold (`/metrics`, the stats and live views) calls `run()` first, and
so does shutdown: a reader never sees a held answer as missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("aimm.gateway")

Job = Callable[[], None]


class Backlog:
    """Jobs held until the worker waits on an upstream, a reader looks, or `delay_s` passed.

    The concurrency rule: jobs are held only while the worker has no other request in flight,
    that is `in_flight <= 1` (the chat pipeline counts its requests: a plain one while it makes
    its answer, a stream until it settles; the ledger defers while its request still counts).
    A plain answer's access-log line is made once the answer is sent, when its request no
    longer counts: with exactly one other request in flight it is held too, and goes out at
    that request's upstream write or within `delay_s`. With more in flight, `defer` is
    `loop.call_soon(job)` as it always was: every request answered in one loop turn leaves its
    job for right after that turn, and the ledger folds the turn's answers in one batch per
    model (~10 µs per answer cheaper at 16 answers per turn than one by one); holding until the
    next upstream write would split those batches.

    The guarantee: at concurrency 1, an answer's statistics and access-log line are settled
    while the worker waits on its next upstream call or within `delay_s` (2 ms), and any reader
    (metrics, stats, live view) sees them, since it runs the backlog first; at higher
    concurrency, once per loop turn as before.
    """

    __slots__ = ("_held", "_loop", "_timer", "delay_s", "in_flight")

    def __init__(self, delay_s: float = 0.002) -> None:
        self.delay_s = delay_s
        self.in_flight = 0  # requests in the chat pipeline (ChatPipeline counts them)
        self._held: list[Job] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's

    def defer(self, job: Job) -> None:
        """Run `job` later: held (alone in flight), else after this loop turn; at once without a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a tool): nothing to wait for
            job()
            return
        if self.in_flight > 1:
            loop.call_soon(job)
            return
        self._held.append(job)
        if self._timer is None or self._loop is not loop:  # a new loop (tests): the old timer is gone
            self._loop, self._timer = loop, loop.call_later(self.delay_s, self.run)

    def upstream_waiting(self) -> None:
        """An upstream request was just written and its answer is awaited: the worker is idle."""
        if self._held:
            self.run()

    def run(self) -> None:
        """Every held job, now (and any a job defers meanwhile); a failing job is logged, the
        others still run."""
        held = self._held
        while held:
            self._held = []
            for job in held:
                try:
                    job()
                except Exception:
                    log.exception("deferred bookkeeping %r failed", job)
            held = self._held
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
