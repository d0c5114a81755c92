"""Forecast: weekly seasonality and trend, measured on a held-out synthetic week."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from aimm_gateway.analytics.forecast import DailySpend, daily_forecast, holdout_error, project_period, weekday_factors


def test_weekday_factors_find_the_weekly_shape() -> None:
    start = date(2026, 11, 2)  # a Monday
    history = [
        DailySpend(start + timedelta(days=i), 10.0 if (start + timedelta(days=i)).weekday() < 5 else 2.0)
        for i in range(28)
    ]
    factors = weekday_factors(history)
    assert factors[0] > 1.2 and factors[6] < 0.5
    ahead = daily_forecast(history, [start + timedelta(days=28 + i) for i in range(7)])
    assert [round(x, 6) for x in ahead] == [10.0] * 5 + [2.0] * 2


def test_project_period_adds_what_is_left() -> None:
    start = date(2026, 11, 2)
    history = [DailySpend(start + timedelta(days=i), 1.0) for i in range(14)]
    today = start + timedelta(days=14)
    projected = project_period(history, Decimal("5"), today, 0.5, today + timedelta(days=2))
    assert projected == Decimal("7.5000")  # half of today + two more days at 1.0


def test_holdout_week_error_beats_the_naive_average() -> None:
    err = holdout_error()
    assert err.week_total_pct < 4.0  # documented in docs/costs.md
    assert err.daily_mape_pct < 8.0
    assert err.daily_mape_pct < err.naive_daily_mape_pct / 4
    assert err.week_total_pct < err.naive_week_total_pct
