"""Prometheus series for cost governance (usage store, budgets, state layer, cache), on the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from aimm_gateway.metrics import PREFIX


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.usage_dropped = Counter(
            PREFIX + "usage_rows_dropped_total", "Usage rows dropped because the write queue was full.", registry=r
        )
        self.usage_write_errors = Counter(
            PREFIX + "usage_write_errors_total", "Failed usage-store batch writes (rows kept).", registry=r
        )
        self.usage_queued = Gauge(PREFIX + "usage_rows_queued", "Usage rows waiting to be written.", registry=r)
        self.budget_thresholds = Counter(
            PREFIX + "budget_threshold_crossed_total",
            "Budget thresholds crossed (once per period each).",
            ["budget", "threshold"],
            registry=r,
        )
        self.budget_refused = Counter(
            PREFIX + "budget_refused_total",
            "Requests refused or downgraded by a budget.",
            ["budget", "action"],
            registry=r,
        )
        self.state_unavailable = Counter(
            PREFIX + "state_unavailable_total",
            "Shared-state calls that failed (Redis down or slow), by user and fail mode applied.",
            ["user", "mode"],
            registry=r,
        )
        self.cache = Counter(PREFIX + "cache_requests_total", "Response-cache lookups.", ["result"], registry=r)
