"""Live per-model statistics over a sliding window, for /api/v1/metrics and /api/v1/stats.

Kept separate from Prometheus (which is cumulative) because users and the operator want
"right now" figures: requests per second, percentiles, error rate, cost per hour.

Memory and the cost of reading are bounded whatever the traffic: each model keeps one slot per
second of the window, and each slot counts latencies in log-spaced buckets (≈10 % wide). Each
model also keeps its window's totals (requests, errors, cost, the merged latency counts), added to
as answers come and taken from as seconds leave the window, so a read costs a model its merged
buckets, not its 60 slots: at 1,000 models `summary()` (the live feed's snapshot, every second
in a fleet) took ~130 ms and `per_model()` (the operator's poll) ~90 ms when it re-added them.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

WINDOW_S = 60
_GROWTH = 1.1  # each latency bucket is 10 % wider than the one before
_SMALLEST_S = 0.0001
# Upper bounds from 0.1 ms to ~10 min; a percentile is reported as its bucket's upper bound.
_BOUNDS: tuple[float, ...] = tuple(_SMALLEST_S * _GROWTH**i for i in range(int(math.log(6000_000, _GROWTH)) + 2))


@dataclass(slots=True)
class _Second:
    """Everything that happened to one model in one second."""

    at: int
    requests: int = 0
    errors: int = 0
    cost: Decimal = Decimal(0)
    latency: dict[int, int] = field(default_factory=dict)  # bucket index -> successful requests


@dataclass(slots=True)
class ModelStats:
    requests_total: int = 0
    errors_total: int = 0
    cost_total: Decimal = Decimal(0)
    last_error: str | None = None
    seconds: deque[_Second] = field(default_factory=deque)
    # The sums of `seconds`, kept as they enter and leave the window (`LiveStats._trim`).
    window_requests: int = 0
    window_errors: int = 0
    window_cost: Decimal = Decimal(0)
    window_latency: dict[int, int] = field(default_factory=dict)


class LiveStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic, window_s: int = WINDOW_S) -> None:
        self._clock = clock
        self._window_s = window_s
        self._models: dict[str, ModelStats] = {}
        self._budget_spend: dict[str, Decimal] = {}

    def record(self, model: str, latency_s: float, ok: bool, cost: Decimal, error: str | None = None) -> None:
        if ok:
            self.record_ok(model, (latency_s,), cost)
            return
        stats, slot = self._slot(model, 1, cost)
        stats.errors_total += 1
        stats.window_errors += 1
        stats.last_error = error
        slot.errors += 1

    def record_ok(self, model: str, latencies_s: Sequence[float], cost: Decimal) -> None:
        """Good answers of one model settled together (`cost` is theirs in total)."""
        stats, slot = self._slot(model, len(latencies_s), cost)
        latency, window = slot.latency, stats.window_latency
        for latency_s in latencies_s:
            bucket = bisect_left(_BOUNDS, latency_s)
            latency[bucket] = latency.get(bucket, 0) + 1
            window[bucket] = window.get(bucket, 0) + 1

    def _slot(self, model: str, requests: int, cost: Decimal) -> tuple[ModelStats, _Second]:
        """Count `requests` costing `cost` for `model` now; its stats and this second's slot."""
        stats = self._models.get(model)
        if stats is None:
            stats = self._models[model] = ModelStats()
        now = int(self._clock())
        stats.requests_total += requests
        stats.cost_total += cost
        seconds = stats.seconds
        if not seconds or seconds[-1].at != now:
            self._trim(stats, now)
            seconds.append(_Second(now))
        stats.window_requests += requests
        stats.window_cost += cost
        slot = seconds[-1]
        slot.requests += requests
        slot.cost += cost
        return stats, slot

    def add_budget_spend(self, budget: str, cost: Decimal) -> Decimal:
        """Add to a budget's spend (this process, since start); returns the new total."""
        total = self._budget_spend[budget] = self._budget_spend.get(budget, Decimal(0)) + cost
        return total

    def budget_spend(self) -> dict[str, Decimal]:
        return dict(self._budget_spend)

    def _trim(self, stats: ModelStats, now: int) -> None:
        """Seconds that left the window: dropped, and taken from the window's totals."""
        seconds, horizon = stats.seconds, now - self._window_s
        while seconds and seconds[0].at <= horizon:
            gone = seconds.popleft()
            stats.window_requests -= gone.requests
            stats.window_errors -= gone.errors
            stats.window_cost -= gone.cost  # Decimal: exact, no drift
            window = stats.window_latency
            for bucket, count in gone.latency.items():
                left = window[bucket] - count
                if left:
                    window[bucket] = left
                else:
                    del window[bucket]

    def _windowed(self) -> Iterable[tuple[str, ModelStats]]:
        now = int(self._clock())
        for name, stats in self._models.items():
            self._trim(stats, now)
            yield name, stats

    def per_model(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, stats in self._windowed():
            requests = stats.window_requests
            p50, p95, p99 = _percentiles_ms(stats.window_latency, (0.50, 0.95, 0.99))
            out[name] = {
                "requests_total": stats.requests_total,
                "errors_total": stats.errors_total,
                "requests_per_minute": requests * 60.0 / self._window_s,
                "error_rate": stats.window_errors / requests if requests else 0.0,
                "p50_latency_ms": p50,
                "p95_latency_ms": p95,
                "p99_latency_ms": p99,
                "cost_usd_total": str(stats.cost_total),
                "cost_usd_window": stats.window_cost,
                "window_requests": requests,
                "last_error": stats.last_error,
            }
        return out

    def summary(self) -> dict[str, Any]:
        """The /api/v1/metrics document: live totals across models plus each model's share."""
        models = self.per_model()  # trims every model's window first
        latency = _merge(stats.window_latency for stats in self._models.values())
        requests = sum(m["window_requests"] for m in models.values())
        errors = sum(stats.window_errors for stats in self._models.values())
        cost = sum((m["cost_usd_window"] for m in models.values()), Decimal(0))
        per_hour = (cost * Decimal(3600) / Decimal(self._window_s)).quantize(Decimal("0.000001"))
        p50, p95, p99 = _percentiles_ms(latency, (0.50, 0.95, 0.99))
        return {
            "window_seconds": self._window_s,
            "requests_per_second": requests / self._window_s,
            "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
            "error_rate": errors / requests if requests else 0.0,
            "cost_per_hour_usd": str(per_hour),
            "traffic_share": {n: (m["window_requests"] / requests if requests else 0.0) for n, m in models.items()},
            "models": {
                n: {k: (str(v) if isinstance(v, Decimal) else v) for k, v in m.items()} for n, m in models.items()
            },
        }


def _merge(histograms: Iterable[dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for hist in histograms:
        for bucket, count in hist.items():
            merged[bucket] = merged.get(bucket, 0) + count
    return merged


def _percentiles_ms(histogram: dict[int, int], qs: Sequence[float]) -> tuple[float | None, ...]:
    """For each q (ascending), the upper bound of the bucket holding the q-quantile (at most ~10 %
    above the true value), in one pass over the buckets; None each for an empty histogram."""
    total = sum(histogram.values())
    if not total:
        return (None,) * len(qs)
    buckets = iter(sorted(histogram.items()))
    found: list[float | None] = []
    seen, bucket = 0, 0
    for q in qs:
        rank = max(1, math.ceil(q * total))
        while seen < rank:  # never past the end: the counts add up to total
            bucket, count = next(buckets)
            seen += count
        found.append(round(_BOUNDS[min(bucket, len(_BOUNDS) - 1)] * 1000.0, 3))
    return tuple(found)


# What a model not called in the window reports for each live figure.
LIVE_DEFAULTS: dict[str, Any] = {
    "requests_total": 0,
    "errors_total": 0,
    "requests_per_minute": 0.0,
    "error_rate": 0.0,
    "p50_latency_ms": None,
    "p95_latency_ms": None,
    "cost_usd_total": "0",
    "last_error": None,
}


def model_views(
    live: Mapping[str, Mapping[str, Any]], health: Mapping[str, Mapping[str, Any]], fields: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Per configured model (the keys of `health`): the named live figures (defaults for a model
    not called yet), its circuit state and availability. /api/v1/stats and the live feed use it."""
    views: dict[str, dict[str, Any]] = {}
    for name, h in health.items():
        figures = live.get(name, {})
        views[name] = {f: figures.get(f, LIVE_DEFAULTS[f]) for f in fields}
        views[name].update(circuit_state=h.get("circuit_state"), available=h.get("available"))
    return views
