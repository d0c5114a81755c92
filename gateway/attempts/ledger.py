"""Per-attempt bookkeeping: breakers, per-model metrics, live stats, and the attempt records.

This stays inside the attempt loop rather than in an `after` stage on purpose: the breaker and
the latency/cost windows must learn of a failure *before* the loop picks the next target, and
per-model series count every attempt (a failed try of model A is A's error even when B answers).
Request-level telemetry (access log, traces, usage rows) reads `Outcome.attempts` in stages.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from aimm_gateway.backlog import Backlog
from aimm_gateway.canonical import Usage
from aimm_gateway.config import ModelConfig
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import UpstreamError
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.routing import RouterState
from aimm_gateway.stages.base import AttemptRecord, Outcome
from aimm_gateway.stats import LiveStats

log = logging.getLogger("aimm.gateway")


@dataclass(slots=True)
class _Success:
    """A good answer whose statistics wait for the next settle (`Ledger.flush`)."""

    latency_s: float  # the whole exchange (per-model duration, live stats)
    first_byte_s: float  # what routing compares: time to first byte for streams, else latency
    cost: Decimal
    prompt_tokens: int
    completion_tokens: int


class Ledger:
    def __init__(
        self, router: RouterState, metrics: GatewayMetrics, stats: LiveStats, backlog: Backlog | None = None
    ) -> None:
        self.router = router
        self.metrics = metrics
        self._stats = stats
        self._backlog = backlog if backlog is not None else Backlog()
        # Good answers since the last settle, by (model, provider): settled together (flush), so a
        # burst of answers costs one statistics update per model, not one each.
        self._successes: dict[tuple[str, str], list[_Success]] = {}

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
        """Settle a good answer: the record, its cost and the breaker now (the attempt loop and
        the `after` hooks read them); router statistics, per-model series and live stats later,
        with every other answer since (`flush`, through the backlog). Returns the cost.
        `ttft` None: a plain answer, whose first byte is its latency."""
        latency = _finish(record, "ok", 200)
        cost = record.cost = request_cost(usage, model.pricing)
        self.router.on_answered(record.model)
        first_byte = latency if ttft is None else ttft
        success = _Success(latency, first_byte, cost, usage.prompt_tokens, usage.completion_tokens)
        pending = self._successes
        first = not pending
        pending.setdefault((record.model, record.provider), []).append(success)
        if first:  # after the append: without an event loop (a tool) the backlog runs it at once
            self._backlog.defer(self.flush)
        return cost

    def flush(self) -> None:
        """Settle the answers since the last flush: one update per model. When it runs (the
        backlog's rule, gateway/backlog.py): with one request in flight, while the worker waits on
        its next upstream call or within 2 ms, whichever comes first; with more, right after the
        loop turn the answers were made in, that turn's answers together. Every reader of what it
        folds (`/metrics`, the stats and live views) drains the backlog first, so none sees an
        answer sent as missing; `complete` calls it at once."""
        pending, self._successes = self._successes, {}
        for (name, provider), done in pending.items():
            try:
                self._settle_model(name, provider, done)
            except Exception:  # a bug here must not stop the other models' settle
                log.exception("settling %d answers of model %s failed", len(done), name)

    def _settle_model(self, name: str, provider: str, done: list[_Success]) -> None:
        series = self.metrics.series(name, provider)
        observe = series.duration.observe
        answers: list[tuple[float, float]] = []
        latencies: list[float] = []
        prompt = completion = 0
        total = Decimal(0)
        for s in done:  # one pass (generator sums cost more than the settle they save at small batches)
            answers.append((s.first_byte_s, float(s.cost)))
            latencies.append(s.latency_s)
            observe(s.latency_s)
            prompt += s.prompt_tokens
            completion += s.completion_tokens
            total += s.cost
        self.router.learn(name, answers)
        series.ok.inc(len(done))
        series.input_tokens.inc(prompt)
        series.output_tokens.inc(completion)
        series.cost.inc(float(total))
        self._stats.record_ok(name, latencies, total)


def _finish(record: AttemptRecord, outcome: str, status: int) -> float:
    record.latency_s = latency = time.perf_counter() - record.started
    record.outcome, record.status = outcome, status
    return latency
