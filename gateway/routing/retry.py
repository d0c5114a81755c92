"""Retry timing and the retry budget.

Backoff is exponential with full jitter (a uniform draw in [0, min(max, initial * 2**(n-1))]),
so retries from many pods do not arrive in waves. An upstream's Retry-After is a floor: the
wait is Retry-After plus that jitter, never sooner than asked -- up to a separate cap,
`retry_after_cap_s` (default 30 s; backoff_max_s paces our own retries and is usually far
shorter than what a rate-limited upstream asks for). Above the cap the wait is the cap: a
request should not sleep for minutes; `exceeds_cap()` lets a caller skip instead.

The budget is a token bucket: every client request deposits `budget_ratio` tokens, every retry
(or hedge) withdraws one. A slow trickle (`min_per_s`) lets low-traffic routes still retry, and
`capacity` bounds bursts, so under a full outage retries add at most ~ratio extra load.
"""

from __future__ import annotations

import random

from aimm_gateway.config import RetrySettings
from aimm_gateway.routing.clock import Clock, SystemClock


class RetryPolicy:
    __slots__ = ("_rng", "initial_s", "max_s", "retry_after_cap_s")

    def __init__(
        self, settings: RetrySettings, rng: random.Random | None = None, *, retry_after_cap_s: float = 30.0
    ) -> None:
        self.initial_s = settings.backoff_initial_s
        self.max_s = settings.backoff_max_s
        self.retry_after_cap_s = retry_after_cap_s
        self._rng = rng or random.Random()

    def backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry number `attempt` (1 = the first retry).

        `retry_after_s`: the failed upstream's Retry-After. Pass it only when the retry goes to
        that same upstream; another model owes nothing to this one's Retry-After. With it, the
        wait is Retry-After plus the jitter (never sooner, and retries still spread out), at most
        `retry_after_cap_s`.
        """
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(max(attempt, 1) - 1, 62))
        delay = self._rng.uniform(0.0, ceiling)
        if retry_after_s is not None and retry_after_s > 0:
            delay = min(retry_after_s + delay, self.retry_after_cap_s)
        return delay

    def exceeds_cap(self, retry_after_s: float | None) -> bool:
        """True when the upstream asks for a longer wait than we are willing to sleep."""
        return retry_after_s is not None and retry_after_s > self.retry_after_cap_s


class RetryBudget:
    """Token bucket bounding retries to ~`ratio` of requests (plus a small floor)."""

    __slots__ = ("_clock", "_t", "capacity", "min_per_s", "ratio", "tokens")

    def __init__(
        self, ratio: float, clock: Clock | None = None, *, min_per_s: float = 1.0, capacity: float = 10.0
    ) -> None:
        clock = clock or SystemClock()
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.capacity = capacity
        self.tokens = capacity
        self._clock = clock
        self._t = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        if now > self._t:
            self.tokens = min(self.capacity, self.tokens + (now - self._t) * self.min_per_s)
            self._t = now

    def deposit(self) -> None:
        """Once per client request (not per attempt)."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + self.ratio)

    def try_withdraw(self) -> bool:
        """Before every retry or hedge; False means the budget is spent: do not retry."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
