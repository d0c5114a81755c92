"""Budget periods in a time zone, forecast, state and threshold alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aimm_operator.budget import crossed_threshold, evaluate, forecast, period_bounds, rfc3339, state


def test_period_bounds_utc() -> None:
    now = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)  # a Wednesday
    d = period_bounds("daily", "UTC", now)
    assert (rfc3339(d.start), rfc3339(d.end)) == ("2026-03-18T00:00:00Z", "2026-03-19T00:00:00Z")
    w = period_bounds("weekly", "UTC", now)
    assert (rfc3339(w.start), rfc3339(w.end)) == ("2026-03-16T00:00:00Z", "2026-03-23T00:00:00Z")
    m = period_bounds("monthly", "UTC", now)
    assert (rfc3339(m.start), rfc3339(m.end)) == ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    dec = period_bounds("monthly", "UTC", datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    assert rfc3339(dec.end) == "2027-01-01T00:00:00Z"


def test_period_in_time_zone_and_across_dst() -> None:
    # 23:30 UTC on 28 March is already 29 March in Berlin (the DST switch day: 23 hours long).
    now = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    d = period_bounds("daily", "Europe/Berlin", now)
    assert rfc3339(d.start) == "2026-03-28T23:00:00Z"  # midnight CET (+1)
    assert rfc3339(d.end) == "2026-03-29T22:00:00Z"  # next midnight CEST (+2)
    assert d.length_s == 23 * 3600
    m = period_bounds("monthly", "America/New_York", datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    assert rfc3339(m.start) == "2025-12-01T05:00:00Z"  # still December in New York


def test_forecast_linear_and_clamped() -> None:
    b = period_bounds("daily", "UTC", datetime(2026, 5, 1, 6, 0, tzinfo=UTC))
    assert forecast(Decimal(10), b, datetime(2026, 5, 1, 6, 0, tzinfo=UTC)) == Decimal("40.0000")
    # Right after the period starts the pace is extrapolated from at least 1% of it.
    assert forecast(Decimal(1), b, b.start) == Decimal("100.0000")
    assert forecast(Decimal(7), b, b.end) == Decimal(7)


def test_state_and_thresholds() -> None:
    assert state(Decimal(10), [50, 80, 100]) == "OK"
    assert state(Decimal(50), [50, 80, 100]) == "Warning"
    assert state(Decimal("99.99"), [50, 80, 100]) == "Warning"
    assert state(Decimal(100), [50, 80, 100]) == "Exceeded"
    assert state(Decimal(90), [100]) == "OK"
    assert crossed_threshold(Decimal(55), [50, 80, 100], None) == 50
    assert crossed_threshold(Decimal(55), [50, 80, 100], 50) is None
    assert crossed_threshold(Decimal(85), [50, 80, 100], 50) == 80
    assert crossed_threshold(Decimal(10), [50], None) is None


def test_evaluate() -> None:
    v = evaluate(
        Decimal(100), Decimal("99.96"), "monthly", "UTC", [50, 80, 100], datetime(2026, 5, 16, 0, 0, tzinfo=UTC)
    )
    assert v.percent_used == Decimal("100.0") and v.state == "Warning"  # display rounds, state does not
    assert v.remaining == Decimal("0.0400") and v.spent == Decimal("99.9600")
    over = evaluate(Decimal(10), Decimal(12), "daily", "UTC", [50], datetime(2026, 5, 16, 12, tzinfo=UTC))
    assert over.remaining == 0 and over.state == "Exceeded" and over.forecast == Decimal("24.0000")
