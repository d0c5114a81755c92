"""Every error is OpenAI-shaped with the right status; streams never end silently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import RunningGateway, Upstream, base_config, upstream_model
from tests.gateway.openai_calls import client, stream_until_error

Start = Callable[[dict[str, Any]], RunningGateway]
HELLO = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def _assert_openai_error(resp: httpx.Response, status: int, contains: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert contains in body["error"]["message"]
    return body["error"]


@pytest.fixture
def gw(openai_upstream: Upstream, start_gateway: Start) -> RunningGateway:
    return start_gateway(base_config([upstream_model("m", openai_upstream)], server={"max_body_bytes": 2048}))


def test_malformed_json_is_400(gw: RunningGateway) -> None:
    with gw.client() as c:
        resp = c.post(
            "/v1/chat/completions",
            content=b'{"model": "m", "messages": [',
            headers={"content-type": "application/json"},
        )
    _assert_openai_error(resp, 400, "malformed JSON")


def test_schema_violation_names_the_field(gw: RunningGateway) -> None:
    with gw.client() as c:
        resp = c.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 7},
        )
        err = _assert_openai_error(resp, 400, "temperature")
        assert err["param"] == "temperature"
        resp = c.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "wizard", "content": "x"}]})
        assert _assert_openai_error(resp, 400, "messages[0].role")["type"] == "invalid_request_error"


def test_unknown_model_is_404(gw: RunningGateway) -> None:
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json={**HELLO, "model": "nope"})
    assert _assert_openai_error(resp, 404, "nope")["code"] == "model_not_found"


def test_body_over_limit_is_413(gw: RunningGateway) -> None:
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 5000}]}
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json=big)
    _assert_openai_error(resp, 413, "limit")


def test_missing_or_wrong_key_is_401(gw: RunningGateway) -> None:
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=HELLO)
    _assert_openai_error(resp, 401, "missing API key")
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=HELLO, headers={"authorization": "Bearer wrong"})
    _assert_openai_error(resp, 401, "invalid API key")


def test_unknown_path_and_method_are_openai_shaped(gw: RunningGateway) -> None:
    with gw.client() as c:
        _assert_openai_error(c.get("/v1/nothing"), 404, "/v1/nothing")
        _assert_openai_error(c.get("/v1/chat/completions"), 405, "Method Not Allowed")


def test_upstream_timeout_is_504(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(
        base_config(
            [upstream_model("m", openai_upstream, timeouts={"total_s": 0.3, "first_byte_s": 0.3})],
            retries={"attempts": 1},
        )
    )
    openai_upstream.set_faults(latency_ms=2000)
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json=HELLO)
    assert _assert_openai_error(resp, 504, "timed out")["type"] == "timeout_error"


def test_upstream_429_passes_retry_after(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(base_config([upstream_model("m", openai_upstream)], retries={"attempts": 1}))
    openai_upstream.set_faults(fail_rate=1.0, status_code=429)
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json=HELLO)
    _assert_openai_error(resp, 429, "upstream error")
    assert int(resp.headers["retry-after"]) >= 1


def test_no_usable_model_is_503(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(base_config([upstream_model("m", openai_upstream, enabled=False)]))
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json=HELLO)
    assert _assert_openai_error(resp, 503, "disabled")["code"] == "no_usable_model"


def test_upstream_400_keeps_provider_message(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(base_config([upstream_model("m", openai_upstream)]))
    # A field the gateway forwards untouched but the (mock) OpenAI API rejects.
    with gw.client() as c:
        resp = c.post("/v1/chat/completions", json={**HELLO, "stream_options": None, "logit_bias": "not-a-map"})
    assert resp.status_code == 400, resp.text
    assert "logit_bias" in resp.json()["error"]["message"]


def test_stream_cut_midway_ends_with_error_event(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(base_config([upstream_model("m", openai_upstream)]))
    openai_upstream.set_faults(cut_stream_after=2, stream_chunks=6)
    received, error = stream_until_error(client(gw), "m", "long story")
    assert received, "the stream had started before the cut"
    assert "stream" in str(error).lower()


def test_raw_stream_error_event_is_last_frame(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(base_config([upstream_model("m", openai_upstream)]))
    openai_upstream.set_faults(cut_stream_after=1)
    with gw.client() as c, c.stream("POST", "/v1/chat/completions", json={**HELLO, "stream": True}) as resp:
        frames = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert resp.status_code == 200
    assert '"error"' in frames[-1] and frames[-1] != "data: [DONE]"
