"""Security metrics: the refusals and the guard's score and decisions, all on the gateway's one
set of series (`GatewayMetrics`, gateway/metrics.py); this is what the security parts call."""

from __future__ import annotations

from aimm_gateway.metrics import GatewayMetrics


class SecurityMetrics:
    def __init__(self, gateway: GatewayMetrics) -> None:
        self.gateway = gateway
        self.state_unavailable = gateway.state_unavailable  # shared-state failures, whoever met them
        self.guard_score = gateway.guard_score
        self.guard_actions = gateway.guard_actions
        self.audit_dropped = gateway.audit_store_dropped

    def auth_failed(self, reason: str) -> None:
        self.gateway.count_auth_failure(reason)  # missing | invalid | expired | forbidden

    def limited(self, reason: str) -> None:
        self.gateway.count_rate_limited(reason)  # requests | tokens | concurrency

    def guard_blocked(self, kind: str) -> None:
        self.gateway.count_guard_block(kind)  # prompt_injection | pii
