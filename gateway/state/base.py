"""The state layer contract. Rate limits, budgets, the response cache and live pub/sub all use it.

Two implementations: in-process (one replica, the embedded default) and Redis (a fleet).
Every method that a request path calls costs at most one Redis round trip (Lua/pipelined),
and never hangs: the Redis implementation bounds each call with a timeout and raises
`StateUnavailable`, and callers apply their configured fail-open / fail-closed choice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, Protocol


class StateUnavailable(Exception):
    """The backing store did not answer in time (Redis down or slow)."""


class WindowCounter(NamedTuple):
    """One limit to check: add `amount` to `key` in a window of `window_s`, allowed up to `limit`.

    Counters and decisions are named tuples, not frozen dataclasses: several are built on every
    limited request, and a tuple costs a tenth of a frozen dataclass to make."""

    key: str
    amount: int
    limit: int
    window_s: float


class WindowDecision(NamedTuple):
    allowed: bool
    remaining: int  # after this hit (0 when refused)
    reset_s: float  # seconds until the window frees capacity


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One concurrency limit to take a slot of: fewer than `limit` held on `key` (expiring after ttl_s)."""

    key: str
    limit: int
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Admission:
    """`admit`'s answer: each counter's decision, and the index of the first full slot (None: none full).

    Something was counted and every slot taken only when `admitted`."""

    decisions: Sequence[WindowDecision]
    full_slot: int | None

    @property
    def admitted(self) -> bool:
        return self.full_slot is None and all(d.allowed for d in self.decisions)


@dataclass(frozen=True, slots=True)
class Reservation:
    key: str  # the budget's counter key (includes the period)
    token: str  # identifies this reservation for settle
    amount: Decimal


class StateStore(Protocol):
    async def hit_many(self, counters: Sequence[WindowCounter]) -> list[WindowDecision]:
        """Check-and-add every counter atomically: all are added, or (one refused) none is."""
        ...

    async def adjust(self, key: str, delta: int, window_s: float) -> None:
        """Correct a window counter after the fact (e.g. tokens/min settled with real usage)."""
        ...

    async def admit(self, counters: Sequence[WindowCounter], slots: Sequence[SlotRequest]) -> Admission:
        """`hit_many` and `acquire_slot` of every slot as one atomic call (one Redis round trip):
        nothing is counted or taken unless every counter fits and every slot is free. A refusal
        by a slot reports the counters' decisions as if counted (for the headers)."""
        ...

    async def release(self, slots: Sequence[str], counters: Sequence[str], delta: int, window_s: float) -> None:
        """After a request, one call: free one slot of each key and `adjust` each counter by delta."""
        ...

    async def acquire_slot(self, key: str, limit: int, ttl_s: float) -> bool:
        """Concurrency limit: take a slot if fewer than `limit` are held (slots expire after ttl_s)."""
        ...

    async def release_slot(self, key: str) -> None: ...

    async def reserve(self, key: str, amount: Decimal, limit: Decimal, ttl_s: float) -> Reservation | None:
        """Atomically add `amount` to the key's reserved+spent total if it stays ≤ limit; else None."""
        ...

    async def settle(self, reservation: Reservation, actual: Decimal) -> Decimal:
        """Replace the reserved amount by the actual cost; returns the new spent total."""
        ...

    async def spent(self, key: str) -> Decimal:
        """Settled + reserved total for a budget key (0 when unknown)."""
        ...

    async def set_spent(self, key: str, amount: Decimal, ttl_s: float) -> None:
        """Reconcile a budget key from the usage store (e.g. after Redis came back)."""
        ...

    async def once(self, key: str, ttl_s: float) -> bool:
        """True the first time `key` is seen within ttl_s (threshold alerts fire once per period)."""
        ...

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, channels: Sequence[str]) -> AsyncIterator[tuple[str, bytes]]: ...

    async def close(self) -> None: ...
