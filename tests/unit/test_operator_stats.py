"""Stats from gateway pods: discovery, aggregation across pods and gateways, and live status."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from aimm_operator.budget import PodBudgets
from aimm_operator.stats import (
    ConfigHistory,
    ModelAggregate,
    PodStats,
    PollMemo,
    StatsCache,
    aggregate_pods,
    endpoints_from_slices,
    live_changed,
    merge_gateways,
    model_events,
    model_live_status,
    stats_url,
)
from tests.unit.operator_fixtures import model, snapshot

NOW = "2026-01-01T00:00:00Z"


def pod(
    requests: int,
    rpm: float,
    err: float,
    p95: float | None,
    cost: str,
    circuit: str = "closed",
    available: bool = True,
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
        }
    )


def budgets_doc(cost: str, threshold: int) -> PodBudgets:
    return PodBudgets.model_validate(
        {
            "budgets": [
                {
                    "name": "b",
                    "costThisPeriod": cost,
                    "percentUsed": "25.0",
                    "projectedPeriodCost": "5",
                    "periodStart": "2026-03-01T00:00:00Z",
                    "periodEnds": "2026-04-01T00:00:00Z",
                }
            ],
            "thresholdEvents": [
                {
                    "budget": "b",
                    "threshold": threshold,
                    "percentUsed": "50.0",
                    "spentUsd": cost,
                    "periodStart": "2026-03-01T00:00:00Z",
                }
            ],
        }
    )


def test_aggregate_pods_sums_and_takes_worst() -> None:
    g = aggregate_pods(
        [
            pod(100, 30, 0.1, 900, "1.5"),
            pod(50, 10, 0.0, 300, "0.25", "half_open", config_hash="h2"),
        ],
        [budgets_doc("2.5", 50), budgets_doc("9", 80)],
    )
    m = g.models["m"]
    assert (m.requests_total, m.errors_total, m.requests_per_minute) == (150, 10, 40)
    assert abs(m.error_rate - 0.075) < 1e-9  # weighted by rpm
    assert m.p95_latency_ms == 900 and m.cost_usd == Decimal("1.75") and m.circuit_state == "half_open"
    assert m.available and m.last_error == "boom" and m.pods == 2
    # Budget figures from the first pod (the fleet's shared figure), crossings from every pod.
    assert g.budgets["b"].cost == Decimal("2.5") and [c.threshold for c in g.crossings] == [50, 80]
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


def test_pod_models_from_the_config_history() -> None:
    cache = StatsCache(max_age_s=10)
    assert cache.pod_models("ns", "gw") == []  # no pod reports: nothing to check
    cache.configs.remember("ns", "gw", "aaaa1111", {"m": 1})
    cache.configs.remember("ns", "gw", "bbbb2222", {"m": 2, "n": 1})
    cache.put(
        "ns", "gw", aggregate_pods([pod(1, 1, 0, 1, "1", config_hash="aaaa"), pod(1, 1, 0, 1, "1", config_hash="zz")])
    )
    assert cache.pod_models("ns", "gw") == [{"m": 1}, None]  # a shortened hash matches; an unknown one is None
    for i in range(ConfigHistory.KEEP):
        cache.configs.remember("ns", "gw", f"c{i}", {})
    assert cache.configs.models_of("ns", "gw", "aaaa1111") is None  # bounded history
    cache.forget("ns", "gw")
    assert cache.configs.models_of("ns", "gw", "c0") is None


def test_an_unchanged_answer_is_not_parsed_again_and_gives_the_same_aggregate() -> None:
    url = "http://p:1/api/v1/stats"
    raw = orjson.dumps({"config_hash": "h1", "models": {"m": {"requests_total": 3}}})
    memo = PollMemo()
    stats = memo.aggregate([(url, raw)], [])
    assert stats.models["m"].requests_total == 3 and stats.pods == 1
    assert memo.aggregate([(url, bytes(raw))], []) is stats  # equal bytes: nothing parsed, the same aggregate
    changed = memo.aggregate([(url, raw.replace(b"3", b"4"))], [])
    assert changed is not stats and changed.models["m"].requests_total == 4
    assert memo.aggregate([], []) is not changed and memo.aggregate([], []).pods == 0  # the pod went away
    again = memo.aggregate([(url, raw)], [])
    assert again.models["m"].requests_total == 3


def test_an_invalid_answer_counts_as_no_answer(caplog: pytest.LogCaptureFixture) -> None:
    good = ("http://a:1/api/v1/stats", orjson.dumps({"config_hash": "h1", "models": {"m": {"requests_total": 2}}}))
    bad = ("http://b:1/api/v1/stats", b'{"models": {"m": {"error_rate": 7}}}')  # error_rate is at most 1
    stats = PollMemo().aggregate([good, bad, ("http://c:1/api/v1/stats", b"<html>")], [])
    assert stats.pods == 1 and stats.models["m"].requests_total == 2
    assert "http://b:1/api/v1/stats unavailable" in caplog.text and "http://c:1/api/v1/stats unavailable" in caplog.text


def test_the_memo_keeps_digests_not_documents() -> None:
    """At 5,000 models one pod's parsed answer is ~6 MB: a 50-pod gateway must not keep 50 of them."""
    models = {f"m{i:04d}": {"requests_total": i} for i in range(2000)}
    answers = [(f"http://p{i}:1/api/v1/stats", orjson.dumps({"config_hash": "h", "models": models})) for i in range(5)]
    memo = PollMemo()
    memo.aggregate(answers, [])
    kept = [d for part in memo.answers for _, d in part]
    assert len(kept) == 5 and all(isinstance(d, bytes) and len(d) == 16 for d in kept)


def test_statuses_are_recomputed_when_stats_or_objects_change() -> None:
    memo = PollMemo()
    a, b = aggregate_pods([pod(1, 1, 0, 1, "1")]), aggregate_pods([pod(1, 1, 0, 1, "1")])
    assert not memo.unchanged((1, (a,)))  # never computed
    memo.basis = (1, (a,))
    assert memo.unchanged((1, (a,)))
    assert not memo.unchanged((2, (a,)))  # an object of the namespace changed
    assert not memo.unchanged((1, (b,)))  # equal figures, but another poll's: compared by identity
    assert not memo.unchanged((1, (a, b)))  # another gateway reports


def test_one_gateway_merge_is_its_own_stats() -> None:
    cache = StatsCache(max_age_s=10)
    a = aggregate_pods([pod(1, 1, 0, 1, "1")])
    cache.put("ns", "a", a)
    assert cache.merged("ns", ["a"]) is a and cache.in_namespace("ns") == (a,)
    cache.put("ns", "b", aggregate_pods([pod(2, 1, 0, 1, "1")]))
    assert cache.merged("ns", ["a", "b"]).models["m"].requests_total == 3  # type: ignore[union-attr]
