"""The backlog: bookkeeping held while one request is in flight, per loop turn with more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from aimm_gateway.backlog import Backlog

LONG = 60.0  # a fallback timer that never fires within a test


@pytest.mark.parametrize("in_flight", [0, 1])
async def test_alone_in_flight_a_job_is_held_past_the_loop_turn(in_flight: int) -> None:
    backlog = Backlog(LONG)
    backlog.in_flight = in_flight
    ran: list[str] = []
    backlog.defer(lambda: ran.append("job"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert ran == []  # held: not in the next loop turns
    backlog.run()
    assert ran == ["job"]
    backlog.run()
    assert ran == ["job"]  # once


async def test_with_other_requests_in_flight_a_job_runs_after_the_loop_turn_as_before() -> None:
    backlog = Backlog(LONG)
    backlog.in_flight = 2
    ran: list[str] = []
    backlog.defer(lambda: ran.append("a"))
    backlog.defer(lambda: ran.append("b"))
    assert ran == []  # not at once: after this turn, with every other job of the turn
    await asyncio.sleep(0)
    assert ran == ["a", "b"]
    backlog.upstream_waiting()
    assert ran == ["a", "b"]  # nothing was held


async def test_upstream_waiting_runs_the_held_jobs_in_order_and_stops_the_timer() -> None:
    loop = asyncio.get_running_loop()
    backlog = Backlog(0.05)
    ran: list[int] = []
    for n in range(3):
        backlog.defer(lambda n=n: ran.append(n))
    await asyncio.sleep(0.03)
    backlog.upstream_waiting()
    assert ran == [0, 1, 2]
    # The first timer is gone: the next job held gets its own full delay, not the old timer's rest.
    times: list[float] = []
    held_at = loop.time()
    backlog.defer(lambda: times.append(loop.time()))
    await _until(lambda: bool(times))
    assert times[0] - held_at >= 0.045 and ran == [0, 1, 2]


async def _until(done: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within the time allowed")


async def test_held_jobs_run_by_the_fallback_timer() -> None:
    loop = asyncio.get_running_loop()
    backlog = Backlog(0.05)
    ran: list[float] = []
    held_at = loop.time()
    backlog.defer(lambda: ran.append(loop.time()))
    backlog.defer(lambda: ran.append(loop.time()))  # one timer, from the first job held
    await _until(lambda: bool(ran))
    assert len(ran) == 2 and ran[0] - held_at >= 0.045
    backlog.defer(lambda: ran.append(loop.time()))  # held again after a run: a new timer
    await _until(lambda: len(ran) == 3)


async def test_a_failing_job_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    backlog = Backlog(LONG)
    ran: list[str] = []

    def broken() -> None:
        raise ValueError("bookkeeping bug")

    backlog.defer(lambda: ran.append("before"))
    backlog.defer(broken)
    backlog.defer(lambda: ran.append("after"))
    with caplog.at_level(logging.ERROR, logger="aimm.gateway"):
        backlog.run()
    assert ran == ["before", "after"]
    failed = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], ValueError)]
    assert len(failed) == 1 and "deferred bookkeeping" in failed[0].getMessage()


async def test_a_job_deferred_by_a_running_job_runs_in_the_same_drain() -> None:
    backlog = Backlog(LONG)
    ran: list[str] = []
    backlog.defer(lambda: backlog.defer(lambda: ran.append("second")))
    backlog.run()
    assert ran == ["second"]


def test_without_an_event_loop_a_job_runs_at_once() -> None:
    backlog = Backlog(LONG)
    ran: list[str] = []
    backlog.defer(lambda: ran.append("now"))
    assert ran == ["now"]
