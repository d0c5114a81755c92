"""Daily rollups and retention: raw rows are rolled up per day, then deleted past retention.

Days are UTC days. A day is recomputed as a whole (idempotent), from the last fully rolled-up
day to today, before anything older than the retention is deleted, so no pruned row is missing
from its rollup.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aimm_gateway.store.base import UsageStore

_ROLLED = "rolled_through"  # meta: every day before this one has a final rollup
_DAY_MS = 86_400_000


def day_bounds_ms(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return start, start + _DAY_MS


async def run_maintenance(store: UsageStore, now: datetime, retention_days: int, rollup_retention_days: int) -> int:
    """Roll up every day not yet final (through today), then prune; returns raw rows deleted."""
    today = now.astimezone(UTC).date()
    mark = await store.get_meta(_ROLLED)
    day = date.fromisoformat(mark) if mark else await _oldest_day(store, today)
    while day <= today:
        since, until = day_bounds_ms(day)
        await store.rollup_day(day.isoformat(), since, until)
        day += timedelta(days=1)
    await store.set_meta(_ROLLED, today.isoformat())  # today is partial: recomputed next time
    raw_cut = day_bounds_ms(today - timedelta(days=retention_days))[0]
    return await store.prune(raw_cut, (today - timedelta(days=rollup_retention_days)).isoformat())


async def _oldest_day(store: UsageStore, today: date) -> date:
    oldest = await store.oldest_ms()
    return today if oldest is None else min(today, datetime.fromtimestamp(oldest / 1000, UTC).date())
