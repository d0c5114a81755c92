"""Single faults over real HTTP: 429 + Retry-After, connection resets, timeouts, slow first
byte, streams cut mid-way. Each one ends in a complete answer or a clean error, never a hang,
never a silent close, never two models' output spliced into one answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config
from tests.gateway.resilience_helpers import (
    FAST_RETRIES,
    admin_status,
    api_client,
    assert_clean_error,
    chat_body,
    check_complete_stream,
    check_errored_stream,
    expected_answer,
    metric,
    metrics,
    model_for,
    pair_gateway,
    parse_sse,
    upstream_count,
)

Start = Callable[[dict[str, Any]], RunningGateway]
Upstreams = Callable[..., Upstream]


def _sdk(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0, timeout=15)


def _stream(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, bytes, float]:
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        raw = resp.read()
    return resp, raw, time.monotonic() - started


# -- 429 and Retry-After ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_429_retry_waits_for_retry_after_then_passes_429_on(upstreams: Upstreams, start_gateway: Start) -> None:
    up = upstreams("openai", status_code=429, retry_after_ms=1000)  # Retry-After: 1
    gw = start_gateway(
        base_config(
            [model_for("m", up, "alpha")],
            routes=[
                {
                    "name": "solo",
                    "targets": [{"model": "m"}],
                    "retries": FAST_RETRIES,
                    "circuit_breaker": {"failure_threshold": 2, "timeout_s": 5.0},
                }
            ],
        )
    )
    with api_client(gw) as client:
        # One 429, then the upstream is fine: the retry goes to the same model, after Retry-After.
        up.set_faults(fail_next=1)
        started = time.monotonic()
        resp = client.post("/v1/chat/completions", json=chat_body("rate limited once", model="solo"))
        elapsed = time.monotonic() - started
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == expected_answer("alpha", "rate limited once")
        assert (resp.headers["x-aimm-model"], resp.headers["x-aimm-attempts"]) == ("m", "2")
        assert resp.headers["x-aimm-route-reason"].startswith("retry after rate_limited")
        assert elapsed >= 1.0, f"retried {elapsed:.3f}s after a 429 with Retry-After: 1"
        assert up.stats()["by_status"] == {"429": 1, "200": 1}

        # Rate limited throughout: after the retries, the client gets the 429 and its Retry-After.
        up.set_faults(fail_rate=1.0)
        for round_ in range(2):
            started = time.monotonic()
            resp = client.post("/v1/chat/completions", json=chat_body(f"rate limited {round_}", model="solo"))
            elapsed = time.monotonic() - started
            err = assert_clean_error(resp.status_code, resp.content, frozenset({429}))
            assert err["type"] == "rate_limit_error"
            assert resp.headers["retry-after"] == "1"
            assert 1.0 <= elapsed < 4.0
        assert up.stats()["by_status"] == {"429": 5, "200": 1}  # 2 attempts per request, no more

        # Five 429s against failure_threshold 2: rate limits never trip the breaker by default.
        assert admin_status(gw)["m"]["circuit_state"] == "closed"
        samples = metrics(gw)
        assert metric(samples, "ai_multimodel_retries_total", model="m") == 3
        assert metric(samples, "ai_multimodel_errors_total", model="m", type="rate_limited") == 5

        # A Retry-After longer than any client should wait (cap 30 s): no retry, 429 at once.
        up.set_faults(retry_after_ms=60_000)
        started = time.monotonic()
        resp = client.post("/v1/chat/completions", json=chat_body("come back in a minute", model="solo"))
        assert_clean_error(resp.status_code, resp.content, frozenset({429}))
        assert resp.headers["retry-after"] == "60"
        assert time.monotonic() - started < 1.0
        assert up.stats()["by_status"]["429"] == 6


@pytest.mark.timeout(20)
def test_429_trips_the_breaker_only_with_trip_on_429(upstreams: Upstreams, start_gateway: Start) -> None:
    limited = {"fail_rate": 1.0, "status_code": 429, "retry_after_ms": 0}
    plain, tripping = upstreams("openai", **limited), upstreams("openai", **limited)
    breaker = {"failure_threshold": 2, "timeout_s": 5.0}
    gw = start_gateway(
        base_config(
            [
                model_for("plain", plain, "alpha", circuit_breaker=breaker),
                model_for("tripping", tripping, "bravo", circuit_breaker={**breaker, "trip_on_429": True}),
            ],
            retries={"attempts": 1},
        )
    )
    with api_client(gw) as client:
        statuses = {
            name: [client.post("/v1/chat/completions", json=chat_body("hi", model=name)).status_code for _ in range(4)]
            for name in ("plain", "tripping")
        }
    assert statuses == {"plain": [429] * 4, "tripping": [429, 429, 503, 503]}
    status = admin_status(gw)
    assert (status["plain"]["circuit_state"], status["tripping"]["circuit_state"]) == ("closed", "open")
    assert (upstream_count(plain), upstream_count(tripping)) == (4, 2)


# -- connection resets ---------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_connection_reset_is_retried_on_the_next_target(upstreams: Upstreams, start_gateway: Start) -> None:
    # A breaker that never opens keeps A in every plan, so every request meets the reset.
    gw, a, b = pair_gateway(
        upstreams, start_gateway, {"reset_connection": 1.0}, circuit_breaker={"failure_threshold": 100}
    )
    client = _sdk(gw)
    for i in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="pair", messages=[{"role": "user", "content": f"reset {i}"}]
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == expected_answer("bravo", f"reset {i}")
        assert completion.choices[0].finish_reason == "stop"
        assert (raw.headers["x-aimm-model"], raw.headers["x-aimm-attempts"]) == ("mb", "2")
        assert raw.headers["x-aimm-route-reason"] == "fallback to mb after connection"
    for i in range(2):
        stream = client.chat.completions.create(
            model="pair", messages=[{"role": "user", "content": f"stream reset {i}"}], stream=True
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == expected_answer("bravo", f"stream reset {i}")
        assert {c.model for c in chunks} == {"bravo"}
    assert a.stats()["dropped"] == upstream_count(a) == 5
    assert upstream_count(b) == 5
    samples = metrics(gw)
    assert metric(samples, "ai_multimodel_errors_total", model="ma", type="connection") == 5
    assert metric(samples, "ai_multimodel_fallbacks_total", route="pair") == 5


# -- timeouts and slow first byte -----------------------------------------------------------------

QUICK_TIMEOUTS = {"total_s": 0.3, "first_byte_s": 0.3, "stream_idle_s": 5.0}


@pytest.mark.timeout(20)
def test_total_timeout_is_504_without_alternative(upstreams: Upstreams, start_gateway: Start) -> None:
    slow = upstreams("openai", latency_ms=2000)
    gw = start_gateway(
        base_config(
            [model_for("slow", slow, "alpha")],
            routes=[
                {"name": "solo", "targets": [{"model": "slow"}], "retries": FAST_RETRIES, "timeouts": QUICK_TIMEOUTS}
            ],
        )
    )
    with api_client(gw) as client:
        for stream in (False, True):
            started = time.monotonic()
            resp, raw, _ = _stream(client, chat_body("too slow", model="solo", stream=stream))
            elapsed = time.monotonic() - started
            err = assert_clean_error(resp.status_code, raw, frozenset({504}))
            assert err["type"] == "timeout_error"
            # Two attempts of 0.3 s each (a lone target is retried on itself), then the answer.
            assert 0.6 <= elapsed < 1.9, elapsed  # waiting out the upstream would take 4 s
    assert upstream_count(slow) == 4


@pytest.mark.timeout(20)
def test_total_timeout_falls_back_to_the_next_target(upstreams: Upstreams, start_gateway: Start) -> None:
    gw, a, b = pair_gateway(upstreams, start_gateway, {"latency_ms": 2000}, timeouts=QUICK_TIMEOUTS)
    client = _sdk(gw)
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="pair", messages=[{"role": "user", "content": "A is too slow"}]
    )
    elapsed = time.monotonic() - started
    assert raw.parse().choices[0].message.content == expected_answer("bravo", "A is too slow")
    assert (raw.headers["x-aimm-model"], raw.headers["x-aimm-attempts"]) == ("mb", "2")
    assert raw.headers["x-aimm-route-reason"] == "fallback to mb after timeout"
    assert 0.3 <= elapsed < 1.5, elapsed
    assert upstream_count(a) == upstream_count(b) == 1
    assert metric(metrics(gw), "ai_multimodel_errors_total", model="ma", type="timeout") == 1


@pytest.mark.timeout(20)
def test_slow_first_byte_on_a_stream_fails_over_before_any_byte(upstreams: Upstreams, start_gateway: Start) -> None:
    # A answers 200 with headers at once, then stalls 2 s before its first event: longer
    # than first_byte_s (0.3 s), far shorter than stream_idle_s (5 s).
    gw, a, b = pair_gateway(upstreams, start_gateway, {"first_byte_delay_ms": 2000}, timeouts=QUICK_TIMEOUTS)
    with api_client(gw) as client:
        resp, raw, elapsed = _stream(client, chat_body("slow first byte", model="pair", stream=True))
    assert resp.status_code == 200, raw
    assert (resp.headers["x-aimm-model"], resp.headers["x-aimm-attempts"]) == ("mb", "2")
    assert resp.headers["x-aimm-route-reason"] == "fallback to mb after timeout"
    check_complete_stream(parse_sse(raw), "bravo", "slow first byte")  # nothing of A's reached the client
    assert elapsed < 1.5, f"waited {elapsed:.2f}s on a stream whose first byte was due in 0.3s"
    assert upstream_count(a) == upstream_count(b) == 1

    # The OpenAI SDK sees one clean stream from B.
    stream = _sdk(gw).chat.completions.create(
        model="pair", messages=[{"role": "user", "content": "slow first byte, sdk"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_answer(
        "bravo", "slow first byte, sdk"
    )


@pytest.mark.timeout(20)
def test_slow_headers_on_a_stream_fail_over(upstreams: Upstreams, start_gateway: Start) -> None:
    gw, a, b = pair_gateway(upstreams, start_gateway, {"latency_ms": 2000}, timeouts=QUICK_TIMEOUTS)
    with api_client(gw) as client:
        resp, raw, elapsed = _stream(client, chat_body("slow headers", model="pair", stream=True))
    assert resp.status_code == 200 and resp.headers["x-aimm-model"] == "mb"
    check_complete_stream(parse_sse(raw), "bravo", "slow headers")
    assert elapsed < 1.5
    assert upstream_count(a) == upstream_count(b) == 1


# -- streams cut mid-way -------------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fault", [{"cut_stream_after": 3}, {"stream_error_after": 3}], ids=["cut", "error-event"])
def test_stream_broken_after_first_chunk_ends_with_an_error_event(
    fault: dict[str, Any], upstreams: Upstreams, start_gateway: Start
) -> None:
    # 3 pieces of text: the role chunk and two pieces arrive, then the upstream breaks.
    gw, a, b = pair_gateway(upstreams, start_gateway, {"stream_chunks": 3, **fault})
    prompt = "cut me off"
    with api_client(gw) as client:
        resp, raw, _ = _stream(client, chat_body(prompt, model="pair", stream=True))
    assert resp.status_code == 200  # committed: the headers went out with the first chunk
    assert resp.headers["x-aimm-model"] == "ma"
    result = parse_sse(raw)
    check_errored_stream(result, "alpha", prompt)
    # Far enough into the answer to tell the models apart: it is A's, and only A's.
    alpha, bravo = expected_answer("alpha", prompt), expected_answer("bravo", prompt)
    assert alpha.startswith(result.text) and not bravo.startswith(result.text), result.text
    assert len(result.text) < len(alpha)
    # No failover after the first chunk (nothing spliced) and no retry of A either.
    assert (upstream_count(a), upstream_count(b)) == (1, 0)

    # The official SDK raises on the error event instead of ending quietly.
    stream = _sdk(gw).chat.completions.create(model="pair", messages=[{"role": "user", "content": prompt}], stream=True)
    received = ""
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received += "".join(c.delta.content or "" for c in chunk.choices)
    assert received == result.text
    assert upstream_count(b) == 0


@pytest.mark.timeout(20)
def test_stream_cut_before_first_chunk_fails_over(upstreams: Upstreams, start_gateway: Start) -> None:
    gw, a, b = pair_gateway(upstreams, start_gateway, {"cut_stream_after": 0})
    with api_client(gw) as client:
        resp, raw, _ = _stream(client, chat_body("cut at once", model="pair", stream=True))
    assert resp.status_code == 200
    assert (resp.headers["x-aimm-model"], resp.headers["x-aimm-attempts"]) == ("mb", "2")
    check_complete_stream(parse_sse(raw), "bravo", "cut at once")
    assert upstream_count(a) == upstream_count(b) == 1


# -- route reasons ----------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_intelligent_route_reason_header(upstreams: Upstreams, start_gateway: Start) -> None:
    a, b = upstreams("openai"), upstreams("openai")
    gw = start_gateway(
        base_config(
            [model_for("ma", a, "alpha", quality=0.9), model_for("mb", b, "bravo", quality=0.4)],
            routes=[{"name": "smart", "targets": [{"model": "ma"}, {"model": "mb"}], "algorithm": "intelligent"}],
        )
    )
    with api_client(gw) as client:
        for stream in (False, True):
            resp, raw, _ = _stream(client, chat_body("which one?", model="smart", stream=stream))
            assert resp.status_code == 200, raw
            reason = resp.headers.get("x-aimm-route-reason", "")
            assert reason.strip() and reason.isascii(), reason
            assert resp.headers["x-aimm-model"] in reason
        # With the chosen model failing, the reason names the fallback and its cause.
        chosen = resp.headers["x-aimm-model"]
        other = "mb" if chosen == "ma" else "ma"
        (a if chosen == "ma" else b).set_faults(fail_next=1, status_code=500)
        resp = client.post("/v1/chat/completions", json=chat_body("which one now?", model="smart"))
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-aimm-model"] == other
        assert resp.headers["x-aimm-route-reason"] == f"fallback to {other} after http"
