"""Redis state for a fleet: every request-path call is one Lua script (one round trip).

Each call is bounded by `timeout_ms` (connect, read and the whole call); past it, or with Redis
down, the call raises `StateUnavailable` at once and the caller applies its fail-open /
fail-closed choice. Nothing retries inside: a retry would only add latency to a request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from aimm_gateway.state import redis_scripts as lua
from aimm_gateway.state.base import (
    Admission,
    Reservation,
    SlotRequest,
    StateUnavailable,
    WindowCounter,
    WindowDecision,
)
from aimm_gateway.state.units import from_units, to_units

log = logging.getLogger("aimm.state")
T = TypeVar("T")
RESERVATION_TTL_MS = 15 * 60 * 1000  # longer than any request; an unsettled reservation frees after it


def connect(url: str, timeout_s: float, max_connections: int = 256) -> aioredis.Redis:
    """A pooled client whose every socket operation is bounded and never retried."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry_on_timeout=False,
        retry=None,
        health_check_interval=0,
        max_connections=max_connections,
    )


async def bounded(awaitable: Awaitable[T], timeout_s: float) -> T:
    """The call's result, or `StateUnavailable` once `timeout_s` passed or Redis failed."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except (TimeoutError, RedisError, OSError) as exc:
        raise StateUnavailable(f"redis: {type(exc).__name__}: {exc}") from None


class RedisState:
    """The StateStore protocol on Redis (redis-py asyncio, one pooled client per process)."""

    def __init__(self, url: str, timeout_ms: float = 50.0, key_prefix: str = "aimm:") -> None:
        timeout = timeout_ms / 1000
        self._timeout = timeout
        self._prefix = key_prefix
        self._redis = connect(url, timeout)
        self._scripts = {
            name: self._redis.register_script(getattr(lua, name))
            for name in ("HIT_MANY", "ADMIT", "ADJUST", "RELEASE", "ACQUIRE_SLOT", "RESERVE", "SETTLE", "SET_SPENT")
        }

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await bounded(awaitable, self._timeout)

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _budget_keys(self, key: str) -> list[str]:
        base = self._k("b:{" + key + "}")  # hash tag: the three keys share a cluster slot
        return [base, base + ":r", base + ":rx"]

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(self._scripts[script](keys=keys, args=args))

    # -- window counters ---------------------------------------------------------------------

    async def hit_many(self, counters: Sequence[WindowCounter]) -> list[WindowDecision]:
        if not counters:
            return []
        args: list[Any] = [len(counters)]
        for c in counters:
            args += [c.amount, c.limit, max(1, int(c.window_s * 1000))]
        out = await self._run("HIT_MANY", [self._k("w:" + c.key) for c in counters], args)
        allowed = bool(out[0])
        return [WindowDecision(allowed, int(out[1 + 2 * i]), int(out[2 + 2 * i]) / 1000) for i in range(len(counters))]

    async def adjust(self, key: str, delta: int, window_s: float) -> None:
        await self._run("ADJUST", [self._k("w:" + key)], [delta, max(1, int(window_s * 1000))])

    async def admit(self, counters: Sequence[WindowCounter], slots: Sequence[SlotRequest]) -> Admission:
        args: list[Any] = [len(counters), len(slots), uuid.uuid4().hex]
        for c in counters:
            args += [c.amount, c.limit, max(1, int(c.window_s * 1000))]
        for s in slots:
            args += [s.limit, int(s.ttl_s * 1000)]
        keys = [self._k("w:" + c.key) for c in counters] + [self._k("s:" + s.key) for s in slots]
        out = await self._run("ADMIT", keys, args)
        allowed, full = bool(out[0]), int(out[-1])
        decisions = [
            WindowDecision(allowed, int(out[1 + 2 * i]), int(out[2 + 2 * i]) / 1000) for i in range(len(counters))
        ]
        return Admission(decisions, full - 1 if full else None)

    async def release(self, slots: Sequence[str], counters: Sequence[str], delta: int, window_s: float) -> None:
        if not slots and not counters:
            return
        keys = [self._k("s:" + k) for k in slots] + [self._k("w:" + k) for k in counters]
        await self._run("RELEASE", keys, [len(slots), delta, max(1, int(window_s * 1000))])

    # -- concurrency slots --------------------------------------------------------------------

    async def acquire_slot(self, key: str, limit: int, ttl_s: float) -> bool:
        token = uuid.uuid4().hex
        return bool(await self._run("ACQUIRE_SLOT", [self._k("s:" + key)], [limit, int(ttl_s * 1000), token]))

    async def release_slot(self, key: str) -> None:
        await self._call(self._redis.zpopmin(self._k("s:" + key)))  # slots are fungible: free one

    # -- budgets ---------------------------------------------------------------------------------

    async def reserve(self, key: str, amount: Decimal, limit: Decimal, ttl_s: float) -> Reservation | None:
        units = to_units(amount, up=True)
        token = uuid.uuid4().hex
        args = [units, to_units(limit), max(1000, int(ttl_s * 1000)), token, RESERVATION_TTL_MS]
        ok, _total = await self._run("RESERVE", self._budget_keys(key), args)
        return Reservation(key, token, from_units(units)) if ok else None

    async def settle(self, reservation: Reservation, actual: Decimal) -> Decimal:
        keys = self._budget_keys(reservation.key)
        return from_units(int(await self._run("SETTLE", keys, [reservation.token, to_units(actual)])))

    async def spent(self, key: str) -> Decimal:
        value = await self._call(self._redis.get(self._budget_keys(key)[0]))
        return from_units(int(value)) if value is not None else Decimal(0)

    async def set_spent(self, key: str, amount: Decimal, ttl_s: float) -> None:
        await self._run("SET_SPENT", self._budget_keys(key), [to_units(amount), max(1000, int(ttl_s * 1000))])

    async def once(self, key: str, ttl_s: float) -> bool:
        first = await self._call(self._redis.set(self._k("o:" + key), b"1", nx=True, px=max(1, int(ttl_s * 1000))))
        return bool(first)

    # -- cache -------------------------------------------------------------------------------------

    async def cache_get(self, key: str) -> bytes | None:
        value = await self._call(self._redis.get(self._k("c:" + key)))
        return value if value is None or isinstance(value, bytes) else value.encode()

    async def cache_set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._call(self._redis.set(self._k("c:" + key), value, px=max(1, int(ttl_s * 1000))))

    # -- pub/sub -----------------------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        await self._call(self._redis.publish(self._k(channel), message))

    async def subscribe(self, channels: Sequence[str]) -> AsyncIterator[tuple[str, bytes]]:
        """Listen until cancelled; a subscription is long-lived, so only its set-up is bounded."""
        pubsub = self._redis.pubsub()
        try:
            await self._call(pubsub.subscribe(*[self._k(c) for c in channels]))
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisError, OSError) as exc:
                    raise StateUnavailable(f"redis pub/sub: {exc}") from None
                if message is not None and message["type"] == "message":
                    yield message["channel"].decode().removeprefix(self._prefix), message["data"]
        finally:
            await pubsub.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._redis.ping()))
        except StateUnavailable:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
