"""Traces through the real request path: a real gateway on loopback, real mock upstreams, the
OpenTelemetry SDK's in-memory exporter. Parent/child structure across retries, fallbacks and
streams, `traceparent` sent upstream, a caller's trace continued; nothing when tracing is off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
from aimm_gateway.telemetry.parts import Telemetry
from tests.gateway.conftest import API_KEY, Upstream, base_config, upstream_model
from tests.servers import run_asgi_app


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def serve(tmp_path: Path, exporter: InMemorySpanExporter) -> Iterator[Callable[[dict[str, Any]], httpx.Client]]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with ExitStack() as stack:

        def start(config: dict[str, Any]) -> httpx.Client:
            path = tmp_path / "gateway.yaml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            gateway = Gateway.from_file(path, telemetry=Telemetry(tracer_provider=provider))
            url = stack.enter_context(run_asgi_app(create_app(gateway)))
            headers = {"authorization": f"Bearer {API_KEY}"}
            return stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=30))

        yield start


def traced(models: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return base_config(models, observability={"tracing": {"enabled": True}, "access_log": {"enabled": False}}, **extra)


def chat(client: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    resp = client.post("/v1/chat/completions", json=body, headers=extra.pop("headers", None))
    assert resp.status_code == 200, resp.text
    return resp


def tree(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(roots) == 1, [s.name for s in spans]
    root = roots[0]
    children = sorted((s for s in spans if s is not root), key=lambda s: s.start_time or 0)
    for child in children:
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    return root, children


def sent_traceparent(upstream: Upstream) -> str | None:
    last = upstream.stats()["last_request"]
    return None if last is None else last["headers"].get("traceparent")


def span_of(traceparent: str | None) -> int:
    assert traceparent is not None
    return int(traceparent.split("-")[2], 16)


def test_retry_on_the_same_model(serve: Any, exporter: InMemorySpanExporter, openai_upstream: Upstream) -> None:
    client = serve(traced([upstream_model("m", openai_upstream)], retries={"attempts": 2, "backoff_initial_s": 0}))
    openai_upstream.set_faults(fail_next=1, status_code=503, retry_after_ms=0)
    chat(client, "m")
    root, (failed, answered) = tree(exporter)
    assert root.name == "chat m" and root.attributes["aimm.attempts"] == 2
    assert failed.attributes["error.type"] != "" and failed.attributes["http.response.status_code"] == 503
    assert "error.type" not in answered.attributes
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0
    assert answered.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span_of(sent_traceparent(openai_upstream)) == answered.context.span_id


def test_fallback_to_another_model(serve: Any, exporter: InMemorySpanExporter, upstreams: Any) -> None:
    bad, good = upstreams("openai"), upstreams("openai")
    bad.set_faults(fail_rate=1.0, status_code=500)
    client = serve(
        traced(
            [upstream_model("a", bad), upstream_model("b", good)],
            routes=[{"name": "r", "targets": [{"model": "a"}], "fallbacks": ["b"]}],
            retries={"attempts": 2, "backoff_initial_s": 0},
        )
    )
    chat(client, "r")
    root, children = tree(exporter)
    assert root.name == "chat r"
    assert [c.attributes["aimm.model"] for c in children] == ["a", "b"]
    assert children[0].attributes["error.type"]
    assert root.attributes["gen_ai.response.model"] and root.attributes["gen_ai.provider.name"]
    assert span_of(sent_traceparent(good)) == children[1].context.span_id


def test_stream_and_caller_trace(serve: Any, exporter: InMemorySpanExporter, openai_upstream: Upstream) -> None:
    client = serve(traced([upstream_model("m", openai_upstream)]))
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with client.stream(
        "POST", "/v1/chat/completions", headers={"traceparent": caller},
        json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ) as resp:  # fmt: skip
        assert resp.status_code == 200
        assert sum(1 for line in resp.iter_lines() if line.startswith("data:")) > 2
    root, (attempt,) = tree(exporter)
    assert format(root.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert root.parent is not None and format(root.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert attempt.attributes["gen_ai.usage.input_tokens"] > 0
    assert root.attributes["gen_ai.usage.output_tokens"] == attempt.attributes["gen_ai.usage.output_tokens"]


def test_off_by_default(serve: Any, exporter: InMemorySpanExporter, openai_upstream: Upstream) -> None:
    client = serve(base_config([upstream_model("m", openai_upstream)]))
    chat(client, "m")
    assert exporter.get_finished_spans() == ()
    assert sent_traceparent(openai_upstream) is None


ZERO_COST_PROBE = """
import sys
from starlette.testclient import TestClient
from aimm_gateway.app import create_app
from aimm_gateway.config import GatewayConfig
from aimm_gateway.service import Gateway

config = GatewayConfig.model_validate({"models": [{"name": "m", "provider": "mock"}], "auth": {"enabled": False},
                                       "observability": {"access_log": {"enabled": False}}})
with TestClient(create_app(Gateway(config))) as client:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def test_tracing_off_never_imports_the_sdk() -> None:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-P", "-c", ZERO_COST_PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
