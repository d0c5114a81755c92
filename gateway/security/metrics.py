"""Security metrics: the gateway's own series for refusals (one set, in metrics.py), plus the
guard's score histogram and decisions, on the same registry."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from aimm_gateway.metrics import PREFIX, GatewayMetrics


class SecurityMetrics:
    def __init__(self, gateway: GatewayMetrics, state_unavailable: Counter | None = None) -> None:
        """`state_unavailable`: the one counter of shared-state failures (the cost services own it)."""
        r = gateway.registry
        self.gateway = gateway
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

    def auth_failed(self, reason: str) -> None:
        self.gateway.count_auth_failure(reason)  # missing | invalid | expired | forbidden

    def limited(self, reason: str) -> None:
        self.gateway.count_rate_limited(reason)  # requests | tokens | concurrency

    def guard_blocked(self, kind: str) -> None:
        self.gateway.count_guard_block(kind)  # prompt_injection | pii
