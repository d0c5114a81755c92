from __future__ import annotations

import random
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


def _from_slots(stats: LiveStats, name: str) -> tuple[int, int, Decimal, dict[int, int]]:
    """The window's figures added up again from its per-second slots: what the kept totals must equal."""
    window = stats._models[name].seconds
    latency: dict[int, int] = {}
    for second in window:
        for bucket, count in second.latency.items():
            latency[bucket] = latency.get(bucket, 0) + count
    return (
        sum(s.requests for s in window),
        sum(s.errors for s in window),
        sum((s.cost for s in window), Decimal(0)),
        latency,
    )


def test_the_windows_kept_totals_equal_its_slots_as_seconds_come_and_go() -> None:
    """Totals are added to as answers come and taken from as seconds leave: after any sequence of
    answers, failures and clock jumps they equal the slots added up again, and so do the
    percentiles; an emptied window holds no buckets."""
    rng = random.Random(11)
    clock = Clock()
    stats = LiveStats(clock, window_s=10)
    for step in range(3000):
        clock.now += rng.choice([0.0, 0.01, 0.3, 1.0, 4.0]) if step % 500 else 25.0  # now and then past the window
        name = rng.choice("abc")
        if rng.random() < 0.2:
            stats.record(name, 0.5, ok=False, cost=Decimal("0.01"), error="x")
        else:
            latencies = [rng.lognormvariate(-3, 1) for _ in range(rng.randint(1, 4))]
            stats.record_ok(name, latencies, Decimal(rng.randint(0, 99)) / 1000)
        if step % 97 == 0:
            views = stats.per_model()  # trims every window
            for model, kept in stats._models.items():
                requests, errors, cost, latency = _from_slots(stats, model)
                assert (kept.window_requests, kept.window_errors, kept.window_cost) == (requests, errors, cost)
                assert kept.window_latency == latency
                assert views[model]["window_requests"] == requests and views[model]["cost_usd_window"] == cost
    clock.now += 11
    emptied = stats.per_model()  # a read trims
    assert emptied["a"]["p99_latency_ms"] is None and emptied["b"]["window_requests"] == 0
    assert all(not m.window_latency and m.window_requests == 0 for m in (stats._models[n] for n in "abc"))


def test_percentiles_are_read_in_one_pass_as_one_by_one() -> None:
    clock = Clock()
    stats = LiveStats(clock, window_s=60)
    for i in range(1, 1001):
        stats.record("a", i / 10_000, ok=True, cost=Decimal(0))  # 0.1 .. 100 ms
    a = stats.per_model()["a"]
    # Each percentile is its bucket's upper bound: never below the true value, at most ~10 % above.
    for key, true_ms in (("p50_latency_ms", 50.0), ("p95_latency_ms", 95.0), ("p99_latency_ms", 99.0)):
        assert true_ms <= a[key] <= true_ms * 1.1
    assert a["p50_latency_ms"] < a["p95_latency_ms"] < a["p99_latency_ms"]
    assert stats.summary()["latency_ms"] == {
        "p50": a["p50_latency_ms"],
        "p95": a["p95_latency_ms"],
        "p99": a["p99_latency_ms"],
    }
