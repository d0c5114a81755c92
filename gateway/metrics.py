"""Prometheus metrics, on a registry owned by the app (no process-global collectors)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

PREFIX = "ai_multimodel_"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass(frozen=True, slots=True)
class ModelSeries:
    """One model's labelled series, resolved once: `labels()` is too slow for every request."""

    ok: Counter
    duration: Histogram
    input_tokens: Counter
    output_tokens: Counter
    cost: Counter


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests_total",
            "Requests by model and outcome.",
            ["model", "provider", "status"],
            registry=r,
        )
        self.duration = Histogram(
            PREFIX + "request_duration_seconds",
            "End-to-end request duration.",
            ["model", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            PREFIX + "time_to_first_token_seconds",
            "Time from request to the first streamed token.",
            ["model", "provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            PREFIX + "errors_total", "Errors by model and type.", ["model", "provider", "type"], registry=r
        )
        self.cost = Counter(PREFIX + "cost_usd_total", "Spend in USD.", ["model", "provider"], registry=r)
        self.input_tokens = Counter(PREFIX + "input_tokens_total", "Prompt tokens.", ["model", "provider"], registry=r)
        self.output_tokens = Counter(
            PREFIX + "output_tokens_total", "Completion tokens.", ["model", "provider"], registry=r
        )
        self.availability = Gauge(
            PREFIX + "model_availability", "1 when the model can take traffic, else 0.", ["model"], registry=r
        )
        self.circuit_state = Gauge(
            PREFIX + "circuit_breaker_state", "0 closed, 1 half-open, 2 open.", ["model"], registry=r
        )
        self.retries = Counter(PREFIX + "retries_total", "Retried attempts.", ["model"], registry=r)
        self.fallbacks = Counter(PREFIX + "fallbacks_total", "Requests served by a fallback.", ["route"], registry=r)
        self.hedges = Counter(PREFIX + "hedges_total", "Hedged requests sent.", ["route"], registry=r)
        self.budget_used = Gauge(
            PREFIX + "budget_used_ratio", "Spend over limit for each budget (this pod).", ["budget"], registry=r
        )
        self.config_reloads = Counter(
            PREFIX + "config_reloads_total", "Config reload attempts.", ["result"], registry=r
        )

        self._series: dict[tuple[str, str], ModelSeries] = {}

    def series(self, model: str, provider: str) -> ModelSeries:
        key = (model, provider)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = ModelSeries(
                ok=self.requests.labels(model, provider, "200"),
                duration=self.duration.labels(model, provider),
                input_tokens=self.input_tokens.labels(model, provider),
                output_tokens=self.output_tokens.labels(model, provider),
                cost=self.cost.labels(model, provider),
            )
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
