"""OpenTelemetry spans for the request path, following the GenAI semantic conventions.

One SERVER span per client request (`chat <route>`), one CLIENT span per upstream attempt
(`chat <upstream model>`), children of the request span whether they are retries, fallbacks or
hedges. The attempt's W3C `traceparent` is sent upstream. Spans are passed explicitly (the
request span rides in `RequestContext.scratch`), never through an ambient current context.

Off by default; when off nothing here is imported on the request path (the telemetry stage and
the attempt loop hold None instead of a `Tracing`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aimm_gateway.canonical import Usage

if TYPE_CHECKING:
    from aimm_gateway.stages.base import AttemptRecord, Outcome

_SERVICE_NAME = "aimm-gateway"

# gen_ai.provider.name well-known values; a provider not listed is reported by its preset name.
_GENAI_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "cohere": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "meta_llama": "meta",
}
_OPERATIONS = {"embeddings": "embeddings"}  # every other API is a chat completion


def genai_provider(provider: str) -> str:
    return _GENAI_PROVIDERS.get(provider, provider)


def operation(api: str) -> str:
    return _OPERATIONS.get(api, "chat")


class Tracing:
    """Starts request traces; one per process, built from a TracerProvider."""

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer = provider.get_tracer("aimm_gateway")
        self.propagator = TraceContextTextMapPropagator()

    def start_request(
        self, api: str, requested: str, stream: bool, request_id: str, incoming: Mapping[str, str] | None = None
    ) -> RequestTrace:
        """The SERVER span; continues the caller's trace when it sent a `traceparent`."""
        op = operation(api)
        parent = self.propagator.extract(incoming) if incoming else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.request.model": requested,
            "aimm.request_id": request_id,
            "aimm.api": api,
        }
        if op == "chat":
            attributes["aimm.stream"] = stream
        span = self.tracer.start_span(f"{op} {requested}", parent, SpanKind.SERVER, attributes)
        return RequestTrace(self, span, op)


class RequestTrace:
    """One request's spans: the SERVER span and a CLIENT span per upstream attempt.

    Attempt spans start when the attempt is sent (their id goes upstream in `traceparent`) and
    end when the request ends, at the time the attempt record says it ended."""

    __slots__ = ("_attempts", "_op", "_tracing", "finish_reasons", "response_model", "span")

    def __init__(self, tracing: Tracing, span: Span, op: str) -> None:
        self._tracing = tracing
        self._op = op
        self.span = span
        self._attempts: list[tuple[AttemptRecord, Span, int]] = []
        # A stream's, noted chunk by chunk by the telemetry stage (a plain answer carries its own).
        self.finish_reasons: list[str] = []
        self.response_model: str | None = None

    @property
    def trace_id(self) -> str:
        """32 hex digits (exemplars, access log)."""
        return format(self.span.get_span_context().trace_id, "032x")

    def attempt(self, record: AttemptRecord, upstream_model: str) -> dict[str, str]:
        """Start the attempt's span; returns the W3C trace-context headers to send upstream."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self._op,
            "gen_ai.provider.name": genai_provider(record.provider),
            "gen_ai.request.model": upstream_model,
            "aimm.model": record.model,
            "aimm.hedge": record.hedge,
        }
        start_ns = time.time_ns()
        context = set_span_in_context(self.span)
        span = self._tracing.tracer.start_span(
            f"{self._op} {upstream_model}", context, SpanKind.CLIENT, attributes, start_time=start_ns
        )
        self._attempts.append((record, span, start_ns))
        carrier: dict[str, str] = {}
        self._tracing.propagator.inject(carrier, set_span_in_context(span))
        return carrier

    def finish(self, outcome: Outcome, error_type: str | None) -> None:
        """End every attempt span (at its own end time), then the request span."""
        answered = _answering(outcome)
        response = outcome.response or {}
        response_model = response.get("model") or self.response_model
        reasons = _reasons_of(response.get("choices")) or self.finish_reasons
        for record, span, start_ns in self._attempts:
            if record is answered:
                _set_answer(span, response_model, outcome.usage, reasons)
            if record.status:
                span.set_attribute("http.response.status_code", record.status)
            if record.outcome not in ("ok", "pending"):
                span.set_attribute("error.type", record.outcome)
                if record.outcome != "cancelled":
                    span.set_status(Status(StatusCode.ERROR, record.outcome))
            span.end(end_time=start_ns + int(record.latency_s * 1e9) if record.latency_s else None)
        span = self.span
        if outcome.ok:
            _set_answer(span, response_model or outcome.model, outcome.usage, reasons)
        if outcome.provider is not None:
            span.set_attribute("gen_ai.provider.name", genai_provider(outcome.provider))
        span.set_attribute("http.response.status_code", outcome.status)
        span.set_attribute("aimm.attempts", len(outcome.attempts))
        span.set_attribute("aimm.cache_hit", outcome.cache_hit)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()


def _answering(outcome: Outcome) -> AttemptRecord | None:
    if not outcome.ok or outcome.cache_hit:
        return None
    for record in reversed(outcome.attempts):
        if record.outcome == "ok" and record.model == outcome.model:
            return record
    return None


def _reasons_of(choices: Sequence[Mapping[str, Any]] | None) -> list[str]:
    return [str(c["finish_reason"]) for c in choices or () if c.get("finish_reason")]


def _set_answer(span: Span, response_model: str | None, usage: Usage | None, reasons: Sequence[str]) -> None:
    if response_model:
        span.set_attribute("gen_ai.response.model", response_model)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
    if reasons:
        span.set_attribute("gen_ai.response.finish_reasons", list(reasons))


def provider_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A TracerProvider exporting by OTLP/HTTP as the standard OTEL_* variables configure it
    (endpoint, headers, protocol, sampler, resource); None when OTEL_SDK_DISABLED=true."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours is only the default.
    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(
        resource=Resource.create({} if named else {"service.name": _SERVICE_NAME})
    )  # sampler from OTEL_TRACES_SAMPLER(_ARG)
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
