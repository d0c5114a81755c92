"""Traces: GenAI semantic-convention spans per request and per attempt (OpenTelemetry SDK,
in-memory exporter). The end-to-end structure through the real pipeline is in test_tracing_http.py."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aimm_gateway.canonical import Usage
from aimm_gateway.stages.base import AttemptRecord, Outcome
from aimm_gateway.telemetry.tracing import Tracing, provider_from_env


@pytest.fixture
def spans() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def test_fallback_attempts_are_children_of_the_request(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    trace = tracing.start_request("openai", "smart", False, "req-1")
    first = AttemptRecord("claude", "anthropic", "pending", 0, 0.0)
    headers = trace.attempt(first, "claude-3-5-haiku")
    first.outcome, first.status, first.latency_s = "timeout", 504, 0.05
    second = AttemptRecord("gpt", "openai", "pending", 0, 0.0)
    trace.attempt(second, "gpt-4o-mini")
    second.outcome, second.status, second.latency_s = "ok", 200, 0.02
    response = {"model": "gpt-4o-mini-2024", "choices": [{"finish_reason": "stop"}]}
    outcome = Outcome(ok=True, model="gpt", provider="openai", usage=Usage(7, 9), attempts=[first, second],
                      response=response)  # fmt: skip
    trace.finish(outcome, None)

    got = by_name(exporter.get_finished_spans())
    root = got["chat smart"][0]
    failed, answered = got["chat claude-3-5-haiku"][0], got["chat gpt-4o-mini"][0]
    assert root.kind is SpanKind.SERVER and root.parent is None
    for child in (failed, answered):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert failed.attributes["gen_ai.provider.name"] == "anthropic"
    assert failed.attributes["error.type"] == "timeout"
    assert failed.status.status_code is StatusCode.ERROR
    assert answered.attributes["gen_ai.provider.name"] == "openai"
    assert answered.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert answered.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert answered.attributes["gen_ai.usage.input_tokens"] == 7
    assert answered.attributes["gen_ai.usage.output_tokens"] == 9
    assert answered.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.request.model"] == "smart"
    assert root.attributes["aimm.attempts"] == 2
    # the traceparent sent upstream names the attempt span, in the request's trace
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == root.context.trace_id and int(span_id, 16) == failed.context.span_id
    assert failed.end_time - failed.start_time == pytest.approx(0.05e9, rel=0.01)


def test_a_caller_traceparent_is_continued(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    trace = tracing.start_request("anthropic", "claude", True, "req-2", {"traceparent": parent})
    trace.finish(Outcome(ok=False, status=503), "no_usable_model")
    (root,) = exporter.get_finished_spans()
    assert format(root.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent is not None and format(root.parent.span_id, "016x") == "b7ad6b7169203331"
    assert root.attributes["error.type"] == "no_usable_model"
    assert root.status.status_code is StatusCode.ERROR


def test_hedge_loser_is_cancelled_not_failed(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    trace = tracing.start_request("openai", "fast", False, "req-3")
    slow = AttemptRecord("slow", "openai", "pending", 0, 0.0)
    trace.attempt(slow, "slow")
    hedge = AttemptRecord("quick", "openai", "pending", 0, 0.0, hedge=True)
    trace.attempt(hedge, "quick")
    slow.outcome, slow.latency_s = "cancelled", 0.03
    hedge.outcome, hedge.status, hedge.latency_s = "ok", 200, 0.01
    trace.finish(Outcome(ok=True, model="quick", provider="openai", attempts=[slow, hedge]), None)
    got = by_name(exporter.get_finished_spans())
    assert got["chat slow"][0].attributes["error.type"] == "cancelled"
    assert got["chat slow"][0].status.status_code is StatusCode.UNSET
    assert got["chat quick"][0].attributes["aimm.hedge"] is True


def test_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert provider_from_env({"OTEL_SDK_DISABLED": "true"}) is None
    provider = provider_from_env({"OTEL_TRACES_EXPORTER": "none"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "aimm-gateway"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gw")
    named = provider_from_env({"OTEL_SERVICE_NAME": "edge-gw", "OTEL_TRACES_EXPORTER": "none"})
    assert named is not None and named.resource.attributes["service.name"] == "edge-gw"
