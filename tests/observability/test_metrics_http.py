"""/metrics of a real gateway on loopback: bounded series under made-up model names, the new
series present after plain and streamed traffic, OpenMetrics negotiation."""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import Upstream, base_config, upstream_model

MOCK_FAULT = {"x-mock-fault": "interval_ms=3; chunks=6"}


def samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(all_samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, lbls), v in all_samples.items() if n == name and labels.items() <= dict(lbls).items())


def test_made_up_model_names_add_no_series(start_gateway: Any, openai_upstream: Upstream) -> None:
    gw = start_gateway(base_config([upstream_model("gpt", openai_upstream)]))
    rng = random.Random(11)
    with gw.client() as client:
        warm_up = {"model": "warm-up-unknown", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=warm_up).status_code == 404
        before = samples(client)
        for _ in range(1000):
            name = "".join(rng.choices(string.ascii_letters + string.digits + "-_.:/", k=rng.randint(1, 30)))
            body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
            assert client.post("/v1/chat/completions", json=body).status_code in (400, 404)
        after = samples(client)
    assert set(after) == set(before), sorted(set(after) ^ set(before))[:10]
    assert value(after, "ai_multimodel_client_requests_total", model="other") >= 1001


def test_streams_fill_ttft_and_inter_chunk_series(start_gateway: Any, openai_upstream: Upstream) -> None:
    gw = start_gateway(base_config([upstream_model("gpt", openai_upstream, headers=MOCK_FAULT)]))
    with gw.client() as client:
        for _ in range(3):
            body = {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                assert resp.status_code == 200
                list(resp.iter_lines())
        got = samples(client)
    assert value(got, "ai_multimodel_time_to_first_token_seconds_count", model="gpt") == 3
    chunks = value(got, "ai_multimodel_inter_chunk_latency_seconds_count", model="gpt")
    assert chunks >= 3 * 5  # six pieces plus the usage chunk: at least five gaps per stream
    assert value(got, "ai_multimodel_inter_chunk_latency_seconds_sum", model="gpt") >= chunks * 0.002
    assert value(got, "ai_multimodel_client_requests_total", model="gpt", code="200", api="openai") == 3
    assert value(got, "ai_multimodel_in_flight_requests") == 0
    assert value(got, "ai_multimodel_upstream_in_flight_requests", model="gpt") == 0


def test_openmetrics_when_asked(start_gateway: Any, openai_upstream: Upstream) -> None:
    gw = start_gateway(base_config([upstream_model("gpt", openai_upstream)]))
    with gw.client() as client:
        om = client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
        plain = client.get("/metrics")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    assert plain.headers["content-type"].startswith("text/plain")


def test_authentication_failures_are_counted(start_gateway: Any, openai_upstream: Upstream) -> None:
    gw = start_gateway(base_config([upstream_model("gpt", openai_upstream)]))
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=gw.url, timeout=10) as anon:
        assert anon.post("/v1/chat/completions", json=body).status_code == 401
        bad = {"authorization": "Bearer wrong"}
        assert anon.post("/v1/chat/completions", json=body, headers=bad).status_code == 401
        assert anon.post("/v1/chat/completions", json=body, headers=bad).status_code == 401
    with gw.client() as client:
        got = samples(client)
    assert value(got, "ai_multimodel_auth_failures_total", reason="missing") == 1
    assert value(got, "ai_multimodel_auth_failures_total", reason="invalid") == 2
