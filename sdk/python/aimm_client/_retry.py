"""When to retry, and how long to wait: pure functions shared by the sync and async clients.

Rules:
- 429 and 503 mean the gateway refused the call and did nothing: retried for every method,
  after the server's Retry-After (or retry-after-ms) when it sent one, else exponential backoff.
- A connection that failed before the request was sent (connect error, pool timeout) is retried
  for every method.
- 502/504 and a connection lost *after* the body was sent may mean the call was done: retried
  only for idempotent calls, or when the caller passed `retry_non_idempotent=True`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

REFUSED = frozenset({429, 503})
MAYBE_DONE = frozenset({502, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0  # a server asking for a longer wait gets an error instead
    retry_non_idempotent: bool = False

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter exponential backoff for retry number `attempt` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def delay_for_status(self, attempt: int, status: int, idempotent: bool, retry_after: float | None) -> float | None:
        """Seconds to wait before retry `attempt` after an error status, or None: don't retry."""
        if attempt > self.max_retries:
            return None
        if status in REFUSED or (status in MAYBE_DONE and (idempotent or self.retry_non_idempotent)):
            if retry_after is not None:
                return retry_after if retry_after <= self.max_retry_after else None
            return self.backoff(attempt)
        return None

    def delay_for_connection(self, attempt: int, sent: bool, idempotent: bool) -> float | None:
        """Seconds to wait before retry `attempt` after a connection failure, or None."""
        if attempt > self.max_retries:
            return None
        if not sent or idempotent or self.retry_non_idempotent:
            return self.backoff(attempt)
        return None


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms` (finer) or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time() if now is None else now))
