from __future__ import annotations

from decimal import Decimal

import pytest

from aimm_gateway.stats import LiveStats


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_rates_and_cost_over_the_window() -> None:
    clock = Clock()
    stats = LiveStats(clock, window_s=60)
    for i in range(1, 101):  # latencies 1..100 ms, one per 0.1 s
        stats.record("a", i / 1000, ok=True, cost=Decimal("0.001"))
        clock.now += 0.1
    stats.record("a", 5.0, ok=False, cost=Decimal(0), error="boom")
    stats.record("b", 0.002, ok=True, cost=Decimal("0.5"))
    a = stats.per_model()["a"]
    assert a["window_requests"] == 101 and a["errors_total"] == 1 and a["last_error"] == "boom"
    assert a["error_rate"] == pytest.approx(1 / 101)
    # Bucketed percentiles: never below the true value, at most one 10 % bucket above it.
    assert 50 <= a["p50_latency_ms"] <= 55 and 95 <= a["p95_latency_ms"] <= 105
    assert a["cost_usd_total"] == "0.100"
    summary = stats.summary()
    assert summary["traffic_share"]["a"] == pytest.approx(101 / 102)
    assert Decimal(summary["cost_per_hour_usd"]) == (Decimal("0.6") * 60).quantize(Decimal("0.000001"))


def test_old_seconds_leave_the_window_but_totals_stay() -> None:
    clock = Clock()
    stats = LiveStats(clock, window_s=60)
    stats.record("a", 0.01, ok=True, cost=Decimal("1"))
    clock.now += 61
    stats.record("a", 0.02, ok=True, cost=Decimal("1"))
    a = stats.per_model()["a"]
    assert a["window_requests"] == 1 and a["requests_total"] == 2
    assert a["cost_usd_window"] == Decimal("1") and a["cost_usd_total"] == "2"
    clock.now += 120
    assert stats.per_model()["a"]["p50_latency_ms"] is None
    assert stats.summary()["requests_per_second"] == 0


def test_memory_is_bounded_by_the_window_not_the_traffic() -> None:
    clock = Clock()
    stats = LiveStats(clock, window_s=10)
    for i in range(20_000):
        clock.now = 1000 + i / 1000  # 20 s of traffic at 1,000 requests/s
        stats.record("a", 0.001 * (i % 50 + 1), ok=True, cost=Decimal(0))
    slots = stats._models["a"].seconds
    assert len(slots) <= 11 and sum(s.requests for s in slots) <= 11_000
    assert all(len(s.latency) <= 50 for s in slots)
