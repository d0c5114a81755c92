"""Budget periods (pure): calendar periods aligned in a time zone, and rolling windows.

A calendar period's counter key names its start, so a new period starts from zero on its own.
A rolling window of N hours is kept as hourly buckets; the window is the current hour's bucket
plus the N-1 before it (spend ages out an hour at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aimm_gateway.config import BudgetConfig


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # aware UTC
    end: datetime  # aware UTC: when the period resets (rolling: when the oldest hour ages out)
    key: str  # the state counter for the current period (rolling: the current hour's bucket)
    prior_keys: tuple[str, ...] = ()  # rolling: the earlier hourly buckets still in the window

    @property
    def length_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def remaining_s(self, now: datetime) -> float:
        return max(0.0, (self.end - now).total_seconds())


def _start_date(period: str, today: date) -> date:
    if period == "daily":
        return today
    if period == "weekly":
        return today - timedelta(days=today.weekday())  # ISO weeks start on Monday
    return today.replace(day=1)


def _next_start(period: str, start: date) -> date:
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # Wall-clock midnight in tz as a UTC instant (zoneinfo resolves DST).
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _hour_key(name: str, hour: datetime) -> str:
    return f"budget:{name}:h:{hour.strftime('%Y%m%d%H')}"


def window(budget: BudgetConfig, now: datetime) -> Window:
    """The period containing `now` (aware)."""
    if budget.period == "rolling":
        assert budget.rolling_hours is not None
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        hours = [hour - timedelta(hours=i) for i in range(budget.rolling_hours)]
        return Window(
            start=hours[-1],
            end=hours[-1] + timedelta(hours=1),  # the oldest hour ages out then
            key=_hour_key(budget.name, hour),
            prior_keys=tuple(_hour_key(budget.name, h) for h in hours[1:]),
        )
    tz = ZoneInfo(budget.timezone)
    start = _start_date(budget.period, now.astimezone(tz).date())
    begins, ends = _local_midnight(start, tz), _local_midnight(_next_start(budget.period, start), tz)
    return Window(begins, ends, f"budget:{budget.name}:{budget.period}:{start.isoformat()}")


def state_ttl_s(budget: BudgetConfig, win: Window, now: datetime) -> float:
    """How long the state keeps a period's counter: past its end, plus a day for late settles."""
    if budget.period == "rolling":
        assert budget.rolling_hours is not None
        return budget.rolling_hours * 3600.0 + 3600.0
    return win.remaining_s(now) + 86_400.0
