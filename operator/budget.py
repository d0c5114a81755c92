"""Budget arithmetic (pure): period bounds in a time zone, forecast, state, threshold alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["daily", "weekly", "monthly"]
State = Literal["OK", "Warning", "Exceeded"]
CENT = Decimal("0.0001")  # status shows four decimals of a dollar


@dataclass(frozen=True)
class PeriodBounds:
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC

    @property
    def length_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _start_date(period: Period, today: date) -> date:
    if period == "daily":
        return today
    if period == "weekly":
        return today - timedelta(days=today.weekday())  # Monday
    return today.replace(day=1)


def _next_start(period: Period, start: date) -> date:
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # Midnight wall-clock in tz, as an absolute UTC instant (DST-safe: zoneinfo resolves the offset).
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def period_bounds(period: Period, time_zone: str, now: datetime) -> PeriodBounds:
    """The budget period containing `now` (aware), as UTC instants."""
    tz = ZoneInfo(time_zone)
    local_today = now.astimezone(tz).date()
    start = _start_date(period, local_today)
    return PeriodBounds(_local_midnight(start, tz), _local_midnight(_next_start(period, start), tz))


def forecast(spent: Decimal, bounds: PeriodBounds, now: datetime, min_elapsed_share: float = 0.01) -> Decimal:
    """Spend projected for the whole period at the average pace so far (linear)."""
    elapsed = (now - bounds.start).total_seconds()
    length = bounds.length_s
    if length <= 0:
        return spent
    share = max(elapsed / length, min_elapsed_share)
    if share >= 1:
        return spent
    return (spent / Decimal(str(share))).quantize(CENT, ROUND_HALF_UP)


def state(percent_used: Decimal, thresholds: list[int]) -> State:
    if percent_used >= 100:
        return "Exceeded"
    warn = [t for t in thresholds if t < 100]
    if warn and percent_used >= min(warn):
        return "Warning"
    return "OK"


def crossed_threshold(percent_used: Decimal, thresholds: list[int], already: int | None) -> int | None:
    """The highest threshold reached that was not yet announced this period, or None."""
    reached = [t for t in thresholds if percent_used >= t]
    if not reached:
        return None
    top = max(reached)
    if already is not None and top <= already:
        return None
    return top


@dataclass(frozen=True)
class BudgetView:
    spent: Decimal
    remaining: Decimal
    percent_used: Decimal  # rounded to 0.1 for display
    percent_exact: Decimal
    forecast: Decimal
    bounds: PeriodBounds
    state: State


def evaluate(
    limit_usd: Decimal, spent: Decimal, period: Period, time_zone: str, thresholds: list[int], now: datetime
) -> BudgetView:
    bounds = period_bounds(period, time_zone, now)
    raw = spent * 100 / limit_usd if limit_usd > 0 else Decimal(0)
    remaining = max(limit_usd - spent, Decimal(0))
    return BudgetView(
        spent=spent.quantize(CENT, ROUND_HALF_UP),
        remaining=remaining.quantize(CENT, ROUND_HALF_UP),
        percent_used=raw.quantize(Decimal("0.1"), ROUND_HALF_UP),
        percent_exact=raw,
        forecast=forecast(spent, bounds, now),
        bounds=bounds,
        state=state(raw, thresholds),
    )


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
