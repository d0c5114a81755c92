"""Stats from gateway pods: discovery, aggregation across pods and gateways, and live status."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from aimm_operator.stats import (
    ModelAggregate,
    PodStats,
    StatsCache,
    aggregate_pods,
    budget_live_status,
    endpoints_from_slices,
    live_changed,
    merge_gateways,
    model_events,
    model_live_status,
    stats_url,
)
from tests.unit.operator_fixtures import body, budget, model, snapshot

NOW = "2026-01-01T00:00:00Z"


def pod(
    requests: int,
    rpm: float,
    err: float,
    p95: float | None,
    cost: str,
    circuit: str = "closed",
    available: bool = True,
    spent: str = "0",
    config_hash: str = "h1",
) -> PodStats:
    return PodStats.model_validate(
        {
            "config_hash": config_hash,
            "models": {
                "m": {
                    "requests_total": requests,
                    "errors_total": int(requests * err),
                    "requests_per_minute": rpm,
                    "error_rate": err,
                    "p95_latency_ms": p95,
                    "cost_usd_total": cost,
                    "circuit_state": circuit,
                    "last_error": "boom" if err else None,
                    "available": available,
                    "extra": "ignored",
                }
            },
            "budgets": {"b": {"spent_usd": spent}},
        }
    )


def test_aggregate_pods_sums_and_takes_worst() -> None:
    g = aggregate_pods(
        [
            pod(100, 30, 0.1, 900, "1.5", spent="2"),
            pod(50, 10, 0.0, 300, "0.25", "half_open", spent="0.5", config_hash="h2"),
        ]
    )
    m = g.models["m"]
    assert (m.requests_total, m.errors_total, m.requests_per_minute) == (150, 10, 40)
    assert abs(m.error_rate - 0.075) < 1e-9  # weighted by rpm
    assert m.p95_latency_ms == 900 and m.cost_usd == Decimal("1.75") and m.circuit_state == "half_open"
    assert m.available and m.last_error == "boom" and m.pods == 2
    assert g.budgets == {"b": Decimal("2.5")}
    assert g.pods_on("h1") == 1 and g.pods_on("h1xxxx") == 1 and g.pods_on(None) == 0


def test_merge_gateways() -> None:
    a = aggregate_pods([pod(10, 5, 0, None, "1", circuit="open", available=False)])
    b = aggregate_pods([pod(20, 5, 0, 100, "2")])
    m = merge_gateways([a, b]).models["m"]
    assert m.requests_total == 30 and m.circuit_state == "open" and m.available and m.p95_latency_ms == 100


def test_endpoints_from_slices() -> None:
    slices = [
        {
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.4"]},
            ],
        },
        {
            "addressType": "IPv6",
            "ports": [{"name": "metrics", "port": 9}, {"name": "http", "port": 8081}],
            "endpoints": [{"addresses": ["fd00::5"]}],
        },
        {"addressType": "IPv4", "ports": None, "endpoints": [{"addresses": ["10.0.0.9"]}]},
    ]
    assert endpoints_from_slices(slices) == [("10.0.0.2", 8080), ("10.0.0.4", 8080), ("fd00::5", 8081)]
    assert stats_url("fd00::5", 8081) == "http://[fd00::5]:8081/api/v1/stats"


def test_model_live_status() -> None:
    m = snapshot(models=[model("m")]).models[0]
    none = model_live_status(m, None, NOW)
    assert none["conditions"][0]["status"] == "Unknown" and "circuitState" not in none
    agg = ModelAggregate(10, 1, 12.345, 0.1, 123.4, Decimal("0.123456"), "closed", "x", True, 2)
    st = model_live_status(m, agg, NOW)
    assert (st["errorRate"], st["p95Latency"], st["costThisPeriod"], st["requestsPerMinute"]) == (
        "10.00%",
        "123ms",
        "0.1235",
        12.35,
    )
    assert st["conditions"][0]["reason"] == "Healthy"
    opened = model_live_status(m, ModelAggregate(circuit_state="open", available=False, pods=1), NOW)
    assert opened["conditions"][0]["reason"] == "CircuitOpen"
    assert [e.reason for e in model_events(m, opened)] == ["CircuitOpened"]
    disabled = snapshot(models=[model("d", enabled=False)]).models[0]
    assert model_live_status(disabled, agg, NOW)["conditions"][0]["reason"] == "Disabled"


def test_budget_live_status_and_threshold_events() -> None:
    b = snapshot(budgets=[budget("b", 10, alertThresholds=[50, 80, 100])]).budgets[0]
    now = datetime(2026, 3, 16, 12, tzinfo=UTC)
    st, events = budget_live_status(b, Decimal("8.5"), now)
    assert (st["spent"], st["remaining"], st["percentUsed"], st["state"]) == ("8.5000", "1.5000", "85.0%", "Warning")
    assert st["periodStart"] == "2026-03-01T00:00:00Z" and st["lastAlertThreshold"] == 80
    assert [e.reason for e in events] == ["BudgetThresholdReached"]
    announced = snapshot(budgets=[body("CostBudget", "b", {"limitUSD": 10}, status=st)]).budgets[0]
    again, events = budget_live_status(announced, Decimal("9"), now)
    assert events == [] and again["lastAlertThreshold"] == 80
    over, events = budget_live_status(announced, Decimal("10"), now)
    assert [e.reason for e in events] == ["BudgetExceeded"] and over["state"] == "Exceeded"
    _next_month, events = budget_live_status(announced, Decimal("6"), datetime(2026, 4, 2, tzinfo=UTC))
    assert [e.reason for e in events] == ["BudgetThresholdReached"]  # a new period announces again


def test_live_changed_ignores_timestamps_only() -> None:
    prev = {
        "spent": "1",
        "lastUpdated": "a",
        "conditions": [{"type": "Available", "status": "True", "reason": "Healthy", "message": "m"}],
    }
    assert not live_changed(prev, {"spent": "1", "lastUpdated": "b"})
    assert live_changed(prev, {"spent": "2"})
    assert live_changed(prev, {"conditions": [{"type": "Available", "status": "False", "reason": "X", "message": "m"}]})


def test_stats_cache_expires() -> None:
    t = [0.0]
    cache = StatsCache(max_age_s=10, clock=lambda: t[0])
    cache.put("ns", "a", aggregate_pods([pod(1, 1, 0, 1, "1")]))
    cache.put("ns", "b", aggregate_pods([pod(2, 1, 0, 1, "1")]))
    merged = cache.merged("ns", ["a", "b", "c"])
    assert merged is not None and merged.models["m"].requests_total == 3
    t[0] = 11
    assert cache.merged("ns", ["a"]) is None
