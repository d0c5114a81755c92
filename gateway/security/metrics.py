"""Security counters, registered on the gateway's own Prometheus registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PREFIX = "ai_multimodel_"


class SecurityMetrics:
    def __init__(self, registry: CollectorRegistry, state_unavailable: Counter | None = None) -> None:
        """`state_unavailable`: the one counter of shared-state failures (the cost services own it)."""
        r = registry
        self.auth_failures = Counter(PREFIX + "auth_failures_total", "Refused credentials.", ["reason"], registry=r)
        self.rate_limited = Counter(
            PREFIX + "rate_limited_total", "Requests refused by a limit.", ["level"], registry=r
        )
        self.state_unavailable = state_unavailable or Counter(
            PREFIX + "state_unavailable_total",
            "Shared-state calls that failed (Redis down or slow), by user and fail mode applied.",
            ["user", "mode"],
            registry=r,
        )
        self.guard_score = Histogram(
            PREFIX + "guard_injection_score",
            "Prompt-injection score of requests (0-10).",
            ["route"],
            buckets=(0.5, 2, 4, 5, 7, 9, 10),
            registry=r,
        )
        self.guard_actions = Counter(
            PREFIX + "guard_actions_total", "Guard decisions by kind.", ["route", "action", "kind"], registry=r
        )
