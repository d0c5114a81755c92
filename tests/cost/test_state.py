"""The state layer: the same behaviour from the in-process store and from a real redis-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from aimm_gateway.config import RedisSettings, SecretRef, StateSettings
from aimm_gateway.state.base import SlotRequest, StateStore, StateUnavailable, WindowCounter
from aimm_gateway.state.factory import build_state
from aimm_gateway.state.memory import MemoryState
from aimm_gateway.state.redis import RedisState
from tests.backing import RedisServer, free_port


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        store: StateStore = MemoryState()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisState(server.url, timeout_ms=500, key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield store
    await store.close()


async def test_window_counters_all_or_nothing(state: StateStore) -> None:
    minute = WindowCounter("k1", 1, 3, 60)
    tokens = WindowCounter("k2", 100, 250, 60)
    first = await state.hit_many([minute, tokens])
    assert [d.allowed for d in first] == [True, True]
    assert [d.remaining for d in first] == [2, 150]
    assert 0 < first[0].reset_s <= 60
    await state.hit_many([minute, tokens])
    refused = await state.hit_many([minute, tokens])  # tokens would reach 300 > 250
    assert [d.allowed for d in refused] == [False, False]
    # Nothing was added by the refused call: the request counter still has one hit left.
    alone = await state.hit_many([minute])
    assert alone[0].allowed and alone[0].remaining == 0
    assert not (await state.hit_many([minute]))[0].allowed


async def test_adjust_corrects_a_window(state: StateStore) -> None:
    tokens = WindowCounter("tok", 0, 100, 60)
    await state.hit_many([WindowCounter("tok", 90, 100, 60)])
    await state.adjust("tok", -50, 60)  # settled with real usage: 40 used, not 90
    assert (await state.hit_many([WindowCounter("tok", 60, 100, 60)]))[0].allowed
    assert (await state.hit_many([tokens]))[0].remaining == 0


async def test_concurrency_slots(state: StateStore) -> None:
    assert await state.acquire_slot("c", 2, 30)
    assert await state.acquire_slot("c", 2, 30)
    assert not await state.acquire_slot("c", 2, 30)
    await state.release_slot("c")
    assert await state.acquire_slot("c", 2, 30)


async def test_admit_counts_and_takes_slots_all_or_nothing(state: StateStore) -> None:
    requests = WindowCounter("ar", 1, 3, 60)
    tokens = WindowCounter("at", 40, 100, 60)
    slots = [SlotRequest("as1", 5, 30), SlotRequest("as2", 1, 30)]
    first = await state.admit([requests, tokens], slots)
    assert first.admitted and [d.remaining for d in first.decisions] == [2, 60]
    # as2 holds its only slot: refused by the slot, nothing counted, no slot of as1 taken.
    full = await state.admit([requests, tokens], slots)
    assert not full.admitted and full.full_slot == 1
    assert [d.allowed for d in full.decisions] == [True, True]  # as if counted, for the headers
    assert [d.remaining for d in full.decisions] == [1, 20]
    # One release frees as2 and settles the tokens (40 reserved, 10 used).
    await state.release(["as1", "as2"], ["at"], -30, 60)
    second = await state.admit([requests, tokens], slots)
    assert second.admitted and [d.remaining for d in second.decisions] == [1, 50]
    # A counter over its limit: refused, and no slot taken (as1 had 5: 1 held now, so 4 more fit).
    over = await state.admit([WindowCounter("at", 60, 100, 60)], slots[:1])
    assert not over.admitted and over.full_slot is None and not over.decisions[0].allowed
    for _ in range(4):
        assert await state.acquire_slot("as1", 5, 30)
    assert not await state.acquire_slot("as1", 5, 30)


async def test_reserve_then_settle(state: StateStore) -> None:
    limit = Decimal("1.00")
    a = await state.reserve("b", Decimal("0.60"), limit, 3600)
    assert a is not None
    assert await state.reserve("b", Decimal("0.50"), limit, 3600) is None  # would be 1.10
    assert await state.spent("b") == Decimal("0.6")
    assert await state.settle(a, Decimal("0.25")) == Decimal("0.25")  # the rest is released
    b = await state.reserve("b", Decimal("0.75"), limit, 3600)
    assert b is not None  # exactly at the limit fits
    assert await state.spent("b") == Decimal("1")
    assert await state.settle(b, Decimal("0.0000000001")) == Decimal("0.2500000001")


async def test_reconcile_keeps_inflight_reservations(state: StateStore) -> None:
    held = await state.reserve("r", Decimal("0.3"), Decimal(10), 3600)
    assert held is not None
    await state.set_spent("r", Decimal("5"), 3600)  # settled spend, from the usage store
    assert await state.spent("r") == Decimal("5.3")
    assert await state.settle(held, Decimal("0.1")) == Decimal("5.1")


async def test_once_per_key(state: StateStore) -> None:
    assert await state.once("threshold:80", 60)
    assert not await state.once("threshold:80", 60)
    assert await state.once("threshold:100", 60)


async def test_cache_roundtrip_and_ttl(state: StateStore) -> None:
    assert await state.cache_get("x") is None
    await state.cache_set("x", b"answer", 0.2)
    assert await state.cache_get("x") == b"answer"
    await asyncio.sleep(0.3)
    assert await state.cache_get("x") is None


async def test_publish_subscribe(state: StateStore) -> None:
    received: list[tuple[str, bytes]] = []

    async def listen() -> None:
        async for item in state.subscribe(["live"]):
            received.append(item)
            return

    task = asyncio.create_task(listen())
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        await state.publish("live", b"hello")
        await asyncio.sleep(0.05)
    await asyncio.wait_for(task, 5)
    assert received[0] == ("live", b"hello")


async def test_memory_cache_is_byte_bounded() -> None:
    state = MemoryState(cache_max_bytes=10)
    await state.cache_set("a", b"12345", 60)
    await state.cache_set("b", b"12345", 60)
    assert await state.cache_get("a") == b"12345"  # touched: now the most recent
    await state.cache_set("c", b"123", 60)  # evicts the least recently used: b
    assert await state.cache_get("b") is None
    assert await state.cache_get("a") == b"12345"


async def test_memory_windows_follow_the_injected_clock() -> None:
    now = [1000.0]
    state = MemoryState(clock=lambda: now[0])
    counter = WindowCounter("k", 1, 1, 10)
    assert (await state.hit_many([counter]))[0].allowed
    refused = (await state.hit_many([counter]))[0]
    assert not refused.allowed and refused.reset_s == pytest.approx(10)
    now[0] += 10
    assert (await state.hit_many([counter]))[0].allowed


async def test_unreachable_redis_raises_quickly_never_hangs() -> None:
    store = RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout_ms=100)
    started = time.monotonic()
    for call in (store.reserve("b", Decimal(1), Decimal(2), 60), store.spent("b"), store.cache_get("k")):
        with pytest.raises(StateUnavailable):
            await call
    assert time.monotonic() - started < 3
    assert not await store.ping()
    await store.close()


async def test_redis_down_then_back(redis_server: RedisServer) -> None:
    store = RedisState(redis_server.url, timeout_ms=300, key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    assert await store.reserve("b", Decimal(1), Decimal(5), 60) is not None
    redis_server.stop()
    try:
        with pytest.raises(StateUnavailable):
            await store.reserve("b", Decimal(1), Decimal(5), 60)
    finally:
        redis_server.start_again()
    await store.set_spent("b", Decimal(3), 60)  # reconciled from the store after the outage
    assert await store.spent("b") == Decimal(3)
    await store.close()


def test_factory_chooses_by_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(build_state(StateSettings()), MemoryState)
    monkeypatch.setenv("AIMM_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    settings = StateSettings(redis=RedisSettings(url=SecretRef(env="AIMM_TEST_REDIS_URL")))
    assert isinstance(build_state(settings), RedisState)
