"""Prometheus metrics, on a registry owned by the app (no process-global collectors).

Every label value is bounded: model and route names come from the config (a name a client made
up is counted as `other`), budgets from the config, and the remaining labels from small fixed
sets (status codes, error kinds, reasons). docs/observability.md lists every metric.

Hot-path series are resolved once and kept (`ModelSeries`, `RequestSeries`): a dict lookup per
request or streamed chunk saved. Every family is the gateway's own (metrics_families.py): plain
numbers updated on the event loop, each sample's line formatted again only when it changed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import CONTENT_TYPE_LATEST as TEXT_TYPE
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE

from aimm_gateway.metrics_families import (
    AnyFamily,
    CounterChild,
    CounterFamily,
    GaugeChild,
    GaugeFamily,
    HistogramChild,
    HistogramFamily,
    exposition_openmetrics,
    exposition_text,
)

F = TypeVar("F", CounterFamily, GaugeFamily, HistogramFamily)

PREFIX = "ai_multimodel_"
OTHER = "other"  # the one label value for every name that is not in the config
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_CHUNK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_CIRCUIT_VALUE = {"closed": 0, "half_open": 1, "open": 2}

# Fixed label sets for counters other stages increment: anything else is counted as `other`.
RATE_LIMIT_REASONS = frozenset({"requests", "tokens", "concurrency", "cost"})
AUTH_FAILURE_REASONS = frozenset({"missing", "invalid", "expired", "forbidden"})
GUARD_KINDS = frozenset({"prompt_injection", "jailbreak", "pii", "secret", "blocked_content", "response"})
_HTTP_CODES = frozenset(str(c) for c in (200, 400, 401, 403, 404, 408, 409, 413, 422, 429, 499, 500, 502, 503, 504))


@dataclass(frozen=True, slots=True)
class ModelSeries:
    """One model's labelled series, resolved once: `labels()` is too slow for every request."""

    ok: CounterChild
    duration: HistogramChild
    ttft: HistogramChild
    inter_chunk: HistogramChild
    input_tokens: CounterChild
    output_tokens: CounterChild
    cost: CounterChild


@dataclass(frozen=True, slots=True)
class RequestSeries:
    """A client request's series for one (api, model-or-route, status): what the telemetry stage counts."""

    requests: CounterChild
    duration: HistogramChild


def bounded(name: str | None, known: Collection[str]) -> str:
    """The label value for a client-supplied model/route name: itself if configured, else `other`."""
    return name if name is not None and name in known else OTHER


def _one_of(value: str, allowed: Collection[str]) -> str:
    return value if value in allowed else OTHER


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)  # for readers that collect (tests, tools)
        self._families: list[AnyFamily] = []  # in the order they are rendered
        self._upstream_metrics()
        self._request_metrics()
        self._policy_metrics()
        self._governance_metrics()
        self._state_metrics()
        self._series: dict[tuple[str, str], ModelSeries] = {}
        self._request_series: dict[tuple[str, str, str], RequestSeries] = {}

    # -- definitions ------------------------------------------------------------------------------
    # One line a metric: the helpers add the prefix, the exposition's list and the registry.

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> CounterFamily:
        return self._add(CounterFamily(PREFIX + name, doc, labels))

    def _gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> GaugeFamily:
        return self._add(GaugeFamily(PREFIX + name, doc, labels))

    def _histogram(self, name: str, doc: str, labels: Sequence[str], buckets: Sequence[float]) -> HistogramFamily:
        return self._add(HistogramFamily(PREFIX + name, doc, labels, buckets))

    def _add(self, family: F) -> F:
        self.registry.register(family)  # refuses a name twice
        self._families.append(family)
        return family

    def _upstream_metrics(self) -> None:
        """Per upstream attempt, labelled by the configured model that was tried."""
        mp = ("model", "provider")
        self.requests = self._counter("requests_total", "Upstream attempts by model and HTTP status.", (*mp, "status"))
        self.duration = self._histogram(
            "request_duration_seconds", "Upstream answer duration (whole answer).", mp, _LATENCY_BUCKETS
        )
        self.ttft = self._histogram(
            "time_to_first_token_seconds", "Time from sending to the first streamed chunk.", mp, _LATENCY_BUCKETS
        )
        self.inter_chunk = self._histogram(
            "inter_chunk_latency_seconds", "Gap between consecutive streamed chunks.", mp, _CHUNK_BUCKETS
        )
        self.errors = self._counter("errors_total", "Failed upstream attempts by kind.", (*mp, "type"))
        self.cost = self._counter("cost_usd_total", "Spend in USD.", mp)
        self.input_tokens = self._counter("input_tokens_total", "Prompt (input) tokens.", mp)
        self.output_tokens = self._counter("output_tokens_total", "Completion (output) tokens.", mp)
        self.retries = self._counter("retries_total", "Retried attempts, by the model retried.", ("model",))
        self.fallbacks = self._counter("fallbacks_total", "Requests served by a fallback.", ("route",))
        self.hedges = self._counter("hedges_total", "Hedged requests sent.", ("route",))

    def _request_metrics(self) -> None:
        """Per client request (the telemetry stage), whatever stage answered or refused it."""
        amc = ("api", "model", "code")
        self.client_requests = self._counter(
            "client_requests_total", "Client requests by API, model or route asked for, and status.", amc
        )
        self.client_duration = self._histogram(
            "client_request_duration_seconds", "Client request duration, gateway included.", amc, _LATENCY_BUCKETS
        )
        self.in_flight = self._gauge("in_flight_requests", "Client requests being served.").labels()

    def _policy_metrics(self) -> None:
        """Counters the policy stages (rate limit, guard, auth) increment, and the budget gauge."""
        self.rate_limited = self._counter("rate_limited_total", "Requests refused by a rate limit (429).", ("reason",))
        self.budget_used = self._gauge(
            "budget_used_ratio", "Spend over limit for each budget, this period.", ("budget",)
        )
        self.auth_failures = self._counter("auth_failures_total", "Requests refused by authentication.", ("reason",))
        self.guard_blocks = self._counter("guard_blocks_total", "Requests blocked by a guard.", ("kind",))

    def _governance_metrics(self) -> None:
        """What cost governance (budget/metrics.py's view) and the guards (security/metrics.py) count."""
        self.usage_dropped = self._counter(
            "usage_rows_dropped_total", "Usage rows dropped because the write queue was full."
        )
        self.usage_write_errors = self._counter(
            "usage_write_errors_total", "Failed usage-store batch writes (rows kept)."
        )
        self.usage_queued = self._gauge("usage_rows_queued", "Usage rows waiting to be written.")
        self.budget_thresholds = self._counter(
            "budget_threshold_crossed_total",
            "Budget thresholds crossed (once per period each).",
            ("budget", "threshold"),
        )
        self.budget_refused = self._counter(
            "budget_refused_total", "Requests refused or downgraded by a budget.", ("budget", "action")
        )
        self.state_unavailable = self._counter(
            "state_unavailable_total",
            "Shared-state calls that failed (Redis down or slow), by user and fail mode applied.",
            ("user", "mode"),
        )
        self.cache = self._counter("cache_requests_total", "Response-cache lookups.", ("result",))
        self.guard_score = self._histogram(
            "guard_injection_score", "Prompt-injection score of requests (0-10).", ("route",), (0.5, 2, 4, 5, 7, 9, 10)
        )
        self.guard_actions = self._counter(
            "guard_actions_total", "Guard decisions by kind.", ("route", "action", "kind")
        )
        self.audit_store_dropped = self._counter(
            "audit_store_dropped_total", "Audit records not written to the usage store because its queue was full."
        )

    def _state_metrics(self) -> None:
        """Model and process state, refreshed at scrape time (no per-request cost)."""
        self.availability = self._gauge("model_availability", "1 when the model can take traffic, else 0.", ("model",))
        self.circuit_state = self._gauge("circuit_breaker_state", "0 closed, 1 half-open, 2 open.", ("model",))
        self.upstream_in_flight = self._gauge(
            "upstream_in_flight_requests", "Upstream calls in progress per model.", ("model",)
        )
        self._model_gauges = ModelGauges((self.availability, self.circuit_state, self.upstream_in_flight))
        self.config_reloads = self._counter("config_reloads_total", "Config reload attempts.", ("result",))
        for result in ("success", "failure"):  # at 0 from the start, so increase() sees the first reload
            self.config_reloads.labels(result)
        self.config_reload_ok = self._gauge(
            "config_last_reload_successful", "1 if the last config reload succeeded, else 0."
        )
        self.config_reload_ok.set(1)

    # -- pre-resolved series ----------------------------------------------------------------------

    def series(self, model: str, provider: str) -> ModelSeries:
        """A configured model's series (callers pass names from the runtime, never client input)."""
        key = (model, provider)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = ModelSeries(
                ok=self.requests.labels(model, provider, "200"),
                duration=self.duration.labels(model, provider),
                ttft=self.ttft.labels(model, provider),
                inter_chunk=self.inter_chunk.labels(model, provider),
                input_tokens=self.input_tokens.labels(model, provider),
                output_tokens=self.output_tokens.labels(model, provider),
                cost=self.cost.labels(model, provider),
            )
        return found

    def request_series(self, api: str, model: str, code: int) -> RequestSeries:
        """`model` must already be bounded (see `bounded`); odd status codes are `other`."""
        key = (api, model, _one_of(str(code), _HTTP_CODES))
        found = self._request_series.get(key)
        if found is None:
            found = self._request_series[key] = RequestSeries(
                self.client_requests.labels(*key), self.client_duration.labels(*key)
            )
        return found

    # -- what other stages call -----------------------------------------------------------------

    def count_rate_limited(self, reason: str) -> None:
        self.rate_limited.labels(_one_of(reason, RATE_LIMIT_REASONS)).inc()

    def count_auth_failure(self, reason: str) -> None:
        self.auth_failures.labels(_one_of(reason, AUTH_FAILURE_REASONS)).inc()

    def count_guard_block(self, kind: str) -> None:
        self.guard_blocks.labels(_one_of(kind, GUARD_KINDS)).inc()

    def count_reload(self, ok: bool) -> None:
        self.config_reloads.labels("success" if ok else "failure").inc()
        self.config_reload_ok.set(1 if ok else 0)

    # -- scrape -----------------------------------------------------------------------------------

    def refresh_models(self, health: Mapping[str, Mapping[str, object]]) -> None:
        """Model gauges from `Gateway.model_health()`, at scrape time and on a reload rather than per
        request: a model removed by a reload stops being reported (and alerted on)."""
        self._model_gauges.refresh({name: _model_values(h) for name, h in health.items()})

    def render(self) -> bytes:
        return exposition_text(self._families)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The exposition and its content type: OpenMetrics (which carries exemplars) when the
        scraper asks for it, as Prometheus does, else the classic text format."""
        if "application/openmetrics-text" in accept:
            return exposition_openmetrics(self._families), OPENMETRICS_TYPE
        return exposition_text(self._families), TEXT_TYPE


def _model_values(health: Mapping[str, object]) -> tuple[float, float, float]:
    in_flight = health.get("in_flight", 0)
    return (
        1 if health["available"] else 0,
        _CIRCUIT_VALUE.get(str(health["circuit_state"]), 0),
        in_flight if isinstance(in_flight, int) else 0,
    )


class ModelGauges:
    """Gauges labelled by model, set from a whole snapshot: each model's series are made once and
    kept, a refresh sets only the values that changed and removes the models that are gone.
    Clearing and re-making every series (prometheus_client's `labels()` validated and locked per
    call) held the event loop ~40 ms per reload and per scrape at 1,000 models."""

    def __init__(self, gauges: Sequence[GaugeFamily]) -> None:
        self._gauges = tuple(gauges)
        self._series: dict[str, tuple[tuple[GaugeChild, ...], tuple[float, ...]]] = {}  # model -> children, values

    def refresh(self, values: Mapping[str, tuple[float, ...]]) -> None:
        for gone in self._series.keys() - values.keys():
            del self._series[gone]
            for gauge in self._gauges:
                gauge.remove(gone)
        for name, now in values.items():
            known = self._series.get(name)
            if known is not None and known[1] == now:
                continue
            children = known[0] if known is not None else tuple(gauge.labels(name) for gauge in self._gauges)
            for child, value in zip(children, now, strict=True):
                child.set(value)
            self._series[name] = (children, now)
