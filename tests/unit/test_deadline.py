"""`Deadline` does what `asyncio.timeout` does, scenario by scenario: a block that overruns leaves
as TimeoutError, one that finishes is never cancelled later, a cancellation from elsewhere stays a
CancelledError (also when the deadline passed too), and nesting resolves to the right one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial

import pytest

from aimm_gateway.providers.deadline import Deadline, Deadlines

Make = Callable[[float], AbstractAsyncContextManager[object]]
KINDS: dict[str, Make] = {"asyncio.timeout": asyncio.timeout, "Deadline": partial(Deadline, Deadlines(Deadline.expire))}


async def _outcome(work: Callable[[], Awaitable[object]]) -> str:
    task = asyncio.ensure_future(work())
    try:
        return f"returned {await task}"
    except BaseException as exc:
        return f"raised {type(exc).__name__}"


async def overruns(make: Make) -> object:
    async with make(0.01):
        await asyncio.sleep(1)
    return "late"


async def finishes(make: Make) -> object:
    async with make(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # past the deadline, outside the block: not cancelled
    return "in time"


async def swallowed(make: Make) -> object:
    async with make(0.01):
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            return "swallowed"
    return "after"


async def inner_times_out_first(make: Make) -> object:
    async with make(1):
        try:
            async with make(0.01):
                await asyncio.sleep(1)
        except TimeoutError:
            return "inner"
    return "none"


async def outer_times_out_first(make: Make) -> object:
    try:
        async with make(0.01), make(1):
            await asyncio.sleep(1)
    except TimeoutError:
        return "outer"
    return "none"


async def cancelled_elsewhere_too(make: Make) -> object:
    async with make(0.01):
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:  # the deadline's
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # and someone else's: not a timeout any more
            raise
    return "none"


SCENARIOS = [overruns, finishes, swallowed, inner_times_out_first, outer_times_out_first, cancelled_elsewhere_too]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_same_outcome_as_asyncio_timeout(scenario: Callable[[Make], Awaitable[object]]) -> None:
    got = {}
    for name, make in KINDS.items():
        got[name] = await _outcome(partial(scenario, make))
    assert got["Deadline"] == got["asyncio.timeout"], got


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    async def block() -> None:
        async with Deadline(Deadlines(Deadline.expire), 1):
            await asyncio.sleep(1)

    task = asyncio.ensure_future(block())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_one_timer_serves_deadlines_in_any_order() -> None:
    timers = Deadlines(Deadline.expire)

    async def block(delay: float, work: float) -> str:
        async with Deadline(timers, delay):
            await asyncio.sleep(work)
        return "done"

    loop = asyncio.get_running_loop()
    started = loop.time()
    # A long deadline first, shorter ones after it: each still times out on time.
    runs = [(5, 0.2), (0.05, 0.01), (0.1, 1), (0.02, 1), (5, 0)]
    got = await asyncio.gather(*(_outcome(partial(block, delay, work)) for delay, work in runs))
    assert got == ["returned done", "returned done", "raised TimeoutError", "raised TimeoutError", "returned done"]
    assert loop.time() - started < 0.5
    # The timer armed for a block that ended finds the one that started after it, and times it out.
    assert await _outcome(partial(block, 0.05, 0)) == "returned done"
    started = loop.time()
    assert await _outcome(partial(block, 0.1, 1)) == "raised TimeoutError"
    assert 0.09 <= loop.time() - started < 0.5
