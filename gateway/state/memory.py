"""In-process state: one replica (the embedded default). Same semantics as the Redis store.

Window counters are fixed windows aligned to the wall clock (`floor(now / window_s)`), exactly
like the Redis scripts, so a limit behaves the same whichever store backs it. Everything runs on
the event loop thread without awaiting in the middle, so each call is atomic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal

from aimm_gateway.state.base import Admission, Reservation, SlotRequest, WindowCounter, WindowDecision
from aimm_gateway.state.units import from_units, to_units

Clock = Callable[[], float]


class _Budget:
    __slots__ = ("expires", "reservations", "total")

    def __init__(self) -> None:
        self.total = 0  # settled + reserved, in units (see units.py)
        self.reservations: dict[str, int] = {}
        self.expires = 0.0


class _Lru:
    """Byte-bounded LRU with per-entry expiry: the in-process response cache."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._used = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str, now: float) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= now:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    def set(self, key: str, value: bytes, expires: float) -> None:
        if len(value) > self._max:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (expires, value)
        self._used += len(value)
        while self._used > self._max:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        _, value = self._items.pop(key)
        self._used -= len(value)


class MemoryState:
    """The StateStore protocol in one process."""

    def __init__(self, clock: Clock = time.time, cache_max_bytes: int = 64 * 1024 * 1024) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, float], tuple[int, int]] = {}  # (key, window) -> (window index, count)
        self._slots: dict[str, list[float]] = {}  # key -> heap of slot expiries
        self._budgets: dict[str, _Budget] = {}
        self._once: dict[str, float] = {}
        self._cache = _Lru(cache_max_bytes)
        self._subscribers: dict[str, set[asyncio.Queue[tuple[str, bytes]]]] = {}
        self._tokens = itertools.count(1)
        self._ops = 0

    def _sweep(self, now: float) -> None:
        """Every 4096 budget/once calls, forget expired periods (rolling budgets make one per hour)."""
        self._ops += 1
        if self._ops % 4096:
            return
        self._budgets = {k: b for k, b in self._budgets.items() if b.expires > now or b.reservations}
        self._once = {k: t for k, t in self._once.items() if t > now}

    # -- window counters ---------------------------------------------------------------------

    def _count(self, key: str, window_s: float, now: float) -> tuple[int, int]:
        index = int(now // window_s)
        held = self._windows.get((key, window_s))
        return index, held[1] if held is not None and held[0] == index else 0

    def _check(self, counters: Sequence[WindowCounter], now: float) -> tuple[bool, list[tuple[int, int]]]:
        """Whether every counter fits, and each one's (window index, count) now."""
        windows = self._windows
        current: list[tuple[int, int]] = []
        allowed = True
        for c in counters:
            index = int(now // c.window_s)
            held = windows.get((c.key, c.window_s))
            count = held[1] if held is not None and held[0] == index else 0
            current.append((index, count))
            allowed = allowed and count + c.amount <= c.limit
        return allowed, current

    def _decide(
        self, counters: Sequence[WindowCounter], current: list[tuple[int, int]], allowed: bool, commit: bool, now: float
    ) -> list[WindowDecision]:
        decisions = []
        for c, (index, count) in zip(counters, current, strict=True):
            reset = (index + 1) * c.window_s - now
            if allowed:
                if commit:
                    self._windows[(c.key, c.window_s)] = (index, count + c.amount)
                decisions.append(WindowDecision(True, max(0, c.limit - count - c.amount), reset))
            else:
                decisions.append(WindowDecision(False, 0, reset))
        return decisions

    async def hit_many(self, counters: Sequence[WindowCounter]) -> list[WindowDecision]:
        # One pass to read, one to write: this runs on every request with limits (docs/security.md).
        now = self._clock()
        allowed, current = self._check(counters, now)
        return self._decide(counters, current, allowed, True, now)

    async def admit(self, counters: Sequence[WindowCounter], slots: Sequence[SlotRequest]) -> Admission:
        now = self._clock()
        allowed, current = self._check(counters, now)
        full = next((i for i, s in enumerate(slots) if len(self._live_slots(s.key, now)) >= s.limit), None)
        decisions = self._decide(counters, current, allowed, full is None, now)
        if allowed and full is None:
            for s in slots:
                heapq.heappush(self._slots[s.key], now + s.ttl_s)
        return Admission(decisions, full if allowed else None)

    async def release(self, slots: Sequence[str], counters: Sequence[str], delta: int, window_s: float) -> None:
        for key in slots:
            await self.release_slot(key)
        for key in counters:
            await self.adjust(key, delta, window_s)

    async def adjust(self, key: str, delta: int, window_s: float) -> None:
        index, count = self._count(key, window_s, self._clock())
        self._windows[(key, window_s)] = (index, max(0, count + delta))

    # -- concurrency slots --------------------------------------------------------------------

    def _live_slots(self, key: str, now: float) -> list[float]:
        heap = self._slots.setdefault(key, [])
        while heap and heap[0] <= now:
            heapq.heappop(heap)  # a holder that never released (crashed request): its slot expired
        return heap

    async def acquire_slot(self, key: str, limit: int, ttl_s: float) -> bool:
        now = self._clock()
        heap = self._live_slots(key, now)
        if len(heap) >= limit:
            return False
        heapq.heappush(heap, now + ttl_s)
        return True

    async def release_slot(self, key: str) -> None:
        heap = self._slots.get(key)
        if heap:
            heapq.heappop(heap)

    # -- budgets ---------------------------------------------------------------------------------

    def _budget(self, key: str, now: float) -> _Budget:
        budget = self._budgets.get(key)
        if budget is None or budget.expires <= now:
            budget = self._budgets[key] = _Budget()
        return budget

    async def reserve(self, key: str, amount: Decimal, limit: Decimal, ttl_s: float) -> Reservation | None:
        now = self._clock()
        self._sweep(now)
        budget = self._budget(key, now)
        units = to_units(amount, up=True)
        if budget.total + units > to_units(limit):
            return None
        token = str(next(self._tokens))
        budget.total += units
        budget.reservations[token] = units
        budget.expires = max(budget.expires, now + ttl_s)
        return Reservation(key, token, from_units(units))

    async def settle(self, reservation: Reservation, actual: Decimal) -> Decimal:
        budget = self._budget(reservation.key, self._clock())
        held = budget.reservations.pop(reservation.token, 0)
        budget.total += to_units(actual) - held
        return from_units(budget.total)

    async def spent(self, key: str) -> Decimal:
        budget = self._budgets.get(key)
        return from_units(budget.total) if budget is not None and budget.expires > self._clock() else Decimal(0)

    async def set_spent(self, key: str, amount: Decimal, ttl_s: float) -> None:
        now = self._clock()
        budget = self._budget(key, now)
        budget.total = to_units(amount) + sum(budget.reservations.values())  # in-flight stay reserved
        budget.expires = now + ttl_s

    async def once(self, key: str, ttl_s: float) -> bool:
        now = self._clock()
        self._sweep(now)
        if self._once.get(key, 0.0) > now:
            return False
        self._once[key] = now + ttl_s
        return True

    # -- cache -------------------------------------------------------------------------------------

    async def cache_get(self, key: str) -> bytes | None:
        return self._cache.get(key, self._clock())

    async def cache_set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._cache.set(key, value, self._clock() + ttl_s)

    # -- pub/sub -----------------------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in self._subscribers.get(channel, ()):
            if queue.qsize() < 1000:  # a slow listener loses messages, never memory
                queue.put_nowait((channel, message))

    async def subscribe(self, channels: Sequence[str]) -> AsyncIterator[tuple[str, bytes]]:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            for channel in channels:
                self._subscribers.get(channel, set()).discard(queue)

    async def close(self) -> None:
        self._subscribers.clear()
