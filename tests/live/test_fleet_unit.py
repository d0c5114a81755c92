"""The fleet's merged `metrics` view (pure): sums, rate-weighted error rate, the slowest p95 as an
upper bound, stale processes left out; and the tail is fed while a peer watches it."""

from __future__ import annotations

from typing import Any

from aimm_gateway.live.fleet import FleetView


def snap(rps: float, window_rps: float, errors: float, p95: float | None, spend: str, **model: Any) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "at": 1.0,
        "data": {
            "requests_per_second": rps,
            "requests_per_second_window": window_rps,
            "window_seconds": 60,
            "requests_total": int(window_rps * 60),
            "latency_ms": {"p50": None if p95 is None else p95 / 2, "p95": p95, "p99": p95},
            "error_rate": errors,
            "cost_per_hour_usd": spend,
            "spend_usd_total": spend,
            "models": {
                "m": {
                    "requests_total": 10,
                    "requests_per_minute": window_rps * 60,
                    "error_rate": errors,
                    "p50_latency_ms": p95,
                    "p95_latency_ms": p95,
                    "cost_usd_total": spend,
                    "circuit_state": model.get("circuit", "closed"),
                    "available": model.get("available", True),
                }
            },
        },
    }


def test_merge_sums_weights_and_bounds() -> None:
    view = FleetView("a")
    view.receive("b", snap(3.0, 3.0, 0.5, 80.0, "0.25", circuit="open", available=False), now=10.0)
    merged = view.merge(snap(1.0, 1.0, 0.1, 20.0, "0.5"), now=10.5, stale_after_s=3.0)["data"]
    assert merged["requests_per_second"] == 4.0 and merged["requests_total"] == 240
    assert abs(merged["error_rate"] - (0.1 * 1 + 0.5 * 3) / 4) < 1e-9  # weighted by request rate
    assert merged["latency_ms"] == {"p50": 40.0, "p95": 80.0, "p99": 80.0}  # the slowest process's
    assert merged["spend_usd_total"] == "0.75" and merged["cost_per_hour_usd"] == "0.75"
    m = merged["models"]["m"]
    assert m["requests_total"] == 20 and m["p95_latency_ms"] == 80.0 and m["cost_usd_total"] == "0.75"
    assert m["circuit_state"] == "open" and m["available"] is True  # worst breaker; some process can serve it
    assert [p["pod"] for p in merged["fleet"]["processes"]] == ["a", "b"]
    assert merged["fleet"]["processes"][1]["age_s"] == 0.5


def test_stale_peers_are_left_out_and_own_echo_ignored() -> None:
    view = FleetView("a")
    view.receive("a", snap(9.0, 9.0, 0.0, 1.0, "9"), now=0.0)  # our own message coming back
    view.receive("b", {**snap(3.0, 3.0, 0.0, 5.0, "1"), "tail_watchers": 1}, now=0.0)
    assert view.tail_watched(now=2.0, stale_after_s=3.0)
    merged = view.merge(snap(1.0, 1.0, 0.0, 2.0, "0"), now=4.0, stale_after_s=3.0)["data"]
    assert merged["requests_per_second"] == 1.0 and [p["pod"] for p in merged["fleet"]["processes"]] == ["a"]
    assert not view.tail_watched(now=4.0, stale_after_s=3.0)  # the watcher went stale with its process
    empty = view.merge(snap(0.0, 0.0, 0.0, None, "0"), now=4.0, stale_after_s=3.0)["data"]
    assert empty["error_rate"] == 0.0 and empty["latency_ms"]["p95"] is None
