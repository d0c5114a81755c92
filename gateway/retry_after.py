"""Reading an upstream's requested wait (`Retry-After`, `retry-after-ms`): a neutral module, so
providers (which read the headers) and routing (which honours the wait) need not import each other.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def parse_retry_after_ms(value: str | None) -> float | None:
    """Seconds from OpenAI's `retry-after-ms` header; None if unusable."""
    if not value:
        return None
    try:
        ms = float(value.strip())
    except ValueError:
        return None
    return max(0.0, ms / 1000.0) if math.isfinite(ms) else None


def retry_after_s(headers: dict[str, str]) -> float | None:
    """Seconds to wait: `retry-after-ms` (OpenAI, Anthropic) is finer than `retry-after`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    precise = parse_retry_after_ms(lowered.get("retry-after-ms"))
    return precise if precise is not None else parse_retry_after(lowered.get("retry-after"))
