"""Per-attempt bookkeeping: breakers, per-model metrics, live stats, and the attempt records.

This stays inside the attempt loop rather than in an `after` stage on purpose: the breaker and
the latency/cost windows must learn of a failure *before* the loop picks the next target, and
per-model series count every attempt (a failed try of model A is A's error even when B answers).
Request-level telemetry (access log, traces, usage rows) reads `Outcome.attempts` in stages.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from aimm_gateway.canonical import Usage
from aimm_gateway.config import ModelConfig
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import UpstreamError
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.routing import RouterState
from aimm_gateway.stages.base import AttemptRecord, Outcome
from aimm_gateway.stats import LiveStats

log = logging.getLogger("aimm.gateway")


class Ledger:
    def __init__(self, router: RouterState, metrics: GatewayMetrics, stats: LiveStats) -> None:
        self.router = router
        self.metrics = metrics
        self._stats = stats

    def start(
        self, outcome: Outcome, name: str, model: ModelConfig, hedge: bool = False, gate: bool = True
    ) -> AttemptRecord | None:
        """Ask the breaker (unless `gate` is off); None when it refuses (not an attempt),
        else the started record."""
        if gate and not self.router.acquire(name):
            return None
        self.router.on_start(name)
        record = AttemptRecord(name, model.provider, "pending", hedge=hedge, started=time.perf_counter())
        outcome.attempts.append(record)
        return record

    def failed(self, record: AttemptRecord, exc: UpstreamError) -> None:
        latency = _finish(record, exc.kind, exc.status)
        name, provider = record.model, record.provider
        self.router.on_failure(name, exc.kind, exc.status, latency)
        self.metrics.requests.labels(name, provider, str(exc.status)).inc()
        self.metrics.errors.labels(name, provider, exc.kind).inc()
        self._stats.record(name, latency, ok=False, cost=Decimal(0), error=exc.message)
        log.warning("upstream failure model=%s kind=%s status=%s: %s", name, exc.kind, exc.status, exc.message)

    def cancelled(self, record: AttemptRecord) -> None:
        """A hedge loser, a client gone, or a local bug: no verdict on the upstream."""
        _finish(record, "cancelled", 0)
        self.router.on_cancel(record.model)

    def succeeded(self, record: AttemptRecord, model: ModelConfig, usage: Usage, ttft: float | None) -> Decimal:
        """Settle a good answer: cost, router stats, per-model series, live stats. Returns the cost.
        `ttft` None: a plain answer, whose first byte is its latency."""
        latency = _finish(record, "ok", 200)
        cost = record.cost = request_cost(usage, model.pricing)
        name = record.model
        self.router.on_success(name, latency if ttft is None else ttft, cost)
        series = self.metrics.series(name, record.provider)
        series.ok.inc()
        series.duration.observe(latency)
        series.input_tokens.inc(usage.prompt_tokens)
        series.output_tokens.inc(usage.completion_tokens)
        series.cost.inc(float(cost))
        self._stats.record(name, latency, ok=True, cost=cost)
        return cost


def _finish(record: AttemptRecord, outcome: str, status: int) -> float:
    record.latency_s = latency = time.perf_counter() - record.started
    record.outcome, record.status = outcome, status
    return latency
