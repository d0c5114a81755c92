"""Circuit breakers over real HTTP: a 5xx burst, the all-open queue, a flapping target.

Each test starts its own gateway and mock upstreams on loopback; breaker timeouts are short
(about a second) so state transitions are observed in real time, via the admin status API,
/metrics and the mocks' own request counts.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config
from tests.gateway.resilience_helpers import (
    FAST_RETRIES,
    admin_status,
    api_client,
    assert_clean_error,
    async_api_client,
    chat_body,
    check_complete_stream,
    expected_answer,
    metric,
    metrics,
    model_for,
    pair_gateway,
    parse_sse,
    upstream_count,
    wait_until,
)

Start = Callable[[dict[str, Any]], RunningGateway]
Upstreams = Callable[..., Upstream]

BREAKER_TIMEOUT_S = 1.5  # long enough that a loaded machine still sees "open" before it ends


def _sdk(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0, timeout=15)


def _ask(client: openai.OpenAI, route: str, prompt: str) -> tuple[str, dict[str, str]]:
    raw = client.chat.completions.with_raw_response.create(model=route, messages=[{"role": "user", "content": prompt}])
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "stop"
    return completion.choices[0].message.content or "", dict(raw.headers)


def _circuit(gw: RunningGateway, model: str) -> tuple[str, float | None, float]:
    """(circuit state from /admin, retry_in_s, the Prometheus gauge) for one model."""
    status = admin_status(gw)[model]
    gauge = metric(metrics(gw), "ai_multimodel_circuit_breaker_state", model=model)
    return status["circuit_state"], status["retry_in_s"], gauge


@pytest.mark.timeout(30)
def test_5xx_burst_breaker_opens_half_opens_and_closes(upstreams: Upstreams, start_gateway: Start) -> None:
    gw, a, _b = pair_gateway(
        upstreams,
        start_gateway,
        {},
        "burst",
        circuit_breaker={
            "failure_threshold": 3,
            "timeout_s": BREAKER_TIMEOUT_S,
            "half_open_requests": 1,
            "min_requests": 1000,  # only the consecutive-failure rule in play
        },
    )
    client = _sdk(gw)

    # Healthy: the preferred target answers.
    text, headers = _ask(client, "burst", "warm up")
    assert text == expected_answer("alpha", "warm up")
    assert (headers["x-aimm-model"], headers["x-aimm-attempts"]) == ("ma", "1")
    assert _circuit(gw, "ma") == ("closed", None, 0.0)

    # A 5xx burst on A: every client request still succeeds, through B, and the headers say so.
    a.set_faults(fail_rate=1.0, status_code=500)
    a_before = upstream_count(a)
    for i in range(3):
        text, headers = _ask(client, "burst", f"burst {i}")
        assert text == expected_answer("bravo", f"burst {i}")
        assert (headers["x-aimm-model"], headers["x-aimm-attempts"]) == ("mb", "2")
        assert headers["x-aimm-route-reason"].startswith("fallback to mb"), headers["x-aimm-route-reason"]
        state = admin_status(gw)["ma"]["circuit_state"]
        assert state == ("open" if i == 2 else "closed"), f"after {i + 1} failures: {state}"
    t_open = time.monotonic()
    assert upstream_count(a) - a_before == 3  # exactly failure_threshold failures reached A

    state, retry_in, gauge = _circuit(gw, "ma")
    assert (state, gauge) == ("open", 2.0)
    assert retry_in is not None and 0 < retry_in <= BREAKER_TIMEOUT_S
    promised = t_open + retry_in  # A must not see traffic before this
    samples = metrics(gw)
    assert metric(samples, "ai_multimodel_fallbacks_total", route="burst") == 3
    assert metric(samples, "ai_multimodel_retries_total", model="mb") == 3
    assert metric(samples, "ai_multimodel_errors_total", model="ma") == 3
    assert metric(samples, "ai_multimodel_model_availability", model="ma") == 0

    # Open: A is skipped outright, B answers on the first attempt.
    for i in range(2):
        _, headers = _ask(client, "burst", f"while open {i}")
        assert (headers["x-aimm-model"], headers["x-aimm-attempts"]) == ("mb", "1")
    assert upstream_count(a) - a_before == 3

    # After timeout_s the circuit is half-open (not a moment before the promised time).
    assert wait_until(lambda: admin_status(gw)["ma"]["circuit_state"] == "half_open", BREAKER_TIMEOUT_S + 3)
    assert time.monotonic() >= promised - 0.02
    assert _circuit(gw, "ma")[::2] == ("half_open", 1.0)

    # A failed probe re-opens it with a fresh timeout; the client still gets B's answer.
    t_probe = time.monotonic()
    text, headers = _ask(client, "burst", "probe fails")
    assert text == expected_answer("bravo", "probe fails")
    assert (headers["x-aimm-model"], headers["x-aimm-attempts"]) == ("mb", "2")
    assert upstream_count(a) - a_before == 4  # exactly one probe
    state, retry_in, gauge = _circuit(gw, "ma")
    assert (state, gauge) == ("open", 2.0)
    assert retry_in is not None
    # Fresh: a whole timeout_s from the probe's failure, so never before t_probe + timeout_s,
    # hence also never earlier than the first open period ended (a re-open never shortens).
    reopen_until = time.monotonic() + retry_in
    assert reopen_until >= t_probe + BREAKER_TIMEOUT_S - 0.02
    assert reopen_until > promised
    assert gw.gateway.router.snapshot()["ma"].times_opened == 2
    _, headers = _ask(client, "burst", "re-opened")
    assert (headers["x-aimm-model"], headers["x-aimm-attempts"]) == ("mb", "1")
    assert upstream_count(a) - a_before == 4

    # A recovers: the next probe after timeout_s succeeds and closes the circuit.
    a.set_faults(fail_rate=0.0)
    assert wait_until(lambda: admin_status(gw)["ma"]["circuit_state"] == "half_open", BREAKER_TIMEOUT_S + 3)
    assert time.monotonic() >= reopen_until - 0.25
    text, headers = _ask(client, "burst", "probe succeeds")
    assert text == expected_answer("alpha", "probe succeeds")
    assert (headers["x-aimm-model"], headers["x-aimm-attempts"]) == ("ma", "1")
    assert _circuit(gw, "ma") == ("closed", None, 0.0)
    for i in range(3):  # A takes its traffic back
        _, headers = _ask(client, "burst", f"recovered {i}")
        assert headers["x-aimm-model"] == "ma"
    assert upstream_count(a) - a_before == 8
    assert metric(metrics(gw), "ai_multimodel_model_availability", model="ma") == 1


@pytest.mark.timeout(30)
async def test_all_targets_open_503_with_retry_after_and_bounded_queue(
    upstreams: Upstreams, start_gateway: Start
) -> None:
    a, b = upstreams("openai", fail_rate=1.0), upstreams("openai", fail_rate=1.0)
    targets = [{"model": "ma", "priority": 0}, {"model": "mb", "priority": 1}]
    b_timeout = 3.0
    gw = start_gateway(
        base_config(
            [
                model_for("ma", a, "alpha", circuit_breaker={"failure_threshold": 1, "timeout_s": 10.0}),
                model_for("mb", b, "bravo", circuit_breaker={"failure_threshold": 1, "timeout_s": b_timeout}),
            ],
            routes=[
                {"name": "plain", "targets": targets, "retries": FAST_RETRIES},
                {"name": "queued", "targets": targets, "retries": FAST_RETRIES, "queue_timeout_s": 6.0},
                {"name": "impatient", "targets": targets, "retries": FAST_RETRIES, "queue_timeout_s": 0.3},
            ],
        )
    )
    async with async_api_client(gw) as client:
        # One request trips both breakers (threshold 1): the client gets a clean 502.
        resp = await client.post("/v1/chat/completions", json=chat_body("trip", model="plain"))
        assert_clean_error(resp.status_code, resp.content, frozenset({502}))
        status = admin_status(gw)
        assert (status["ma"]["circuit_state"], status["mb"]["circuit_state"]) == ("open", "open")
        assert (upstream_count(a), upstream_count(b)) == (1, 1)

        # Everything open: 503 at once, Retry-After = the soonest half-open (B's), whole seconds up.
        started = time.monotonic()
        resp = await client.post("/v1/chat/completions", json=chat_body("all open", model="plain"))
        elapsed = time.monotonic() - started
        err = assert_clean_error(resp.status_code, resp.content, frozenset({503}))
        assert err["code"] == "no_usable_model"
        b_retry_in = admin_status(gw)["mb"]["retry_in_s"]
        since_request = time.monotonic() - started  # the gateway computed Retry-After within this
        assert b_retry_in is not None and 0 < b_retry_in <= b_timeout
        retry_after = int(resp.headers["retry-after"])
        assert math.ceil(b_retry_in) <= retry_after <= math.ceil(b_retry_in + since_request), (retry_after, b_retry_in)
        assert retry_after <= math.ceil(b_timeout)
        assert retry_after < math.ceil(admin_status(gw)["ma"]["retry_in_s"])  # not A's, later, one
        assert elapsed < 1.5  # no queueing (that would take until B half-opens, ~3 s)
        assert (upstream_count(a), upstream_count(b)) == (1, 1)

        # B recovers. A queued request waits for B to half-open and succeeds; one whose
        # queue_timeout_s ends first gets a clean 503 (after waiting, not at once).
        b.set_faults(fail_rate=0.0)
        b_half_open_in = admin_status(gw)["mb"]["retry_in_s"]
        assert b_half_open_in is not None and b_half_open_in > 1.0  # the impatient one must expire first
        b_ready_at = time.monotonic() + b_half_open_in  # an upper estimate of B's half-open time

        async def timed(route: str) -> tuple[float, float, Any]:
            t0 = time.monotonic()
            r = await client.post("/v1/chat/completions", json=chat_body(f"queued on {route}", model=route))
            t1 = time.monotonic()
            return t1 - t0, t1, r

        (waited_q, done_q, resp_q), (waited_i, _, resp_i) = await asyncio.gather(timed("queued"), timed("impatient"))

        assert_clean_error(resp_i.status_code, resp_i.content, frozenset({503}))
        assert 0.3 - 0.02 <= waited_i < 2.0
        assert "retry-after" in resp_i.headers

        assert resp_q.status_code == 200, resp_q.text
        assert resp_q.headers["x-aimm-model"] == "mb"
        assert resp_q.json()["choices"][0]["message"]["content"] == expected_answer("bravo", "queued on queued")
        assert done_q >= b_ready_at - 0.1  # it waited for B to half-open, it did not get in early
        assert waited_q < 6.0
        status = admin_status(gw)
        assert (status["ma"]["circuit_state"], status["mb"]["circuit_state"]) == ("open", "closed")
        assert (upstream_count(a), upstream_count(b)) == (1, 2)


@pytest.mark.timeout(30)
def test_flapping_target_alternating_failures_zero_failed_requests(upstreams: Upstreams, start_gateway: Start) -> None:
    gw, a, b = pair_gateway(
        upstreams,
        start_gateway,
        {},
        "flap",
        # fast retries, default retry budget (ratio 0.2, capacity 10)
        circuit_breaker={"failure_threshold": 3, "timeout_s": 1.0, "min_requests": 1000},
    )
    served: dict[str, int] = {}
    with api_client(gw) as client:
        for i in range(20):
            if i % 2 == 0:
                a.set_faults(fail_next=1, status_code=503, retry_after_ms=0)  # A fails, then recovers
            stream = i % 4 == 1
            with client.stream(
                "POST", "/v1/chat/completions", json=chat_body(f"flap {i}", model="flap", stream=stream)
            ) as resp:
                raw = resp.read()
            assert resp.status_code == 200, raw
            model = resp.headers["x-aimm-model"]
            served[model] = served.get(model, 0) + 1
            upstream_id = {"ma": "alpha", "mb": "bravo"}[model]
            assert model == ("mb" if i % 2 == 0 else "ma"), (i, model)
            if stream:
                check_complete_stream(parse_sse(raw), upstream_id, f"flap {i}")
            else:
                assert raw.decode().count(expected_answer(upstream_id, f"flap {i}")) == 1
    assert served == {"ma": 10, "mb": 10}
    # Never three failures in a row: the breaker stays closed through the flapping.
    assert admin_status(gw)["ma"]["circuit_state"] == "closed"
    assert upstream_count(a) == 20 and upstream_count(b) == 10


@pytest.mark.timeout(40)
async def test_flapping_target_under_concurrent_load_zero_failed_requests(
    upstreams: Upstreams, start_gateway: Start
) -> None:
    """A target flips between down (150 ms) and up (250 ms) while 8 clients keep calling for 2 s;
    its breaker opens, half-opens and closes over and over. With a healthy second target and a
    budget that affords one fallback per request, no client request fails."""
    gw, a, _b = pair_gateway(
        upstreams,
        start_gateway,
        {},
        "flap",
        # One fallback per request is always affordable at ratio 1.0.
        retries={**FAST_RETRIES, "budget_ratio": 1.0},
        circuit_breaker={"failure_threshold": 2, "timeout_s": 0.1, "min_requests": 1000},
    )
    stop = threading.Event()
    cycles = 0

    def flapper() -> None:
        nonlocal cycles
        while not stop.is_set():
            a.set_faults(fail_rate=1.0, status_code=500, reset_connection=0.5)  # down
            if stop.wait(0.15):
                break
            a.set_faults(fail_rate=0.0, reset_connection=0.0)  # up
            cycles += 1
            stop.wait(0.25)

    results: list[tuple[int, int, str, bytes]] = []
    thread = threading.Thread(target=flapper, daemon=True)
    thread.start()
    try:
        async with async_api_client(gw) as client:
            deadline = time.monotonic() + 2.0
            counter = iter(range(1_000_000))

            async def worker() -> None:
                while time.monotonic() < deadline:
                    i = next(counter)
                    body = chat_body(f"flap {i}", model="flap", stream=i % 2 == 1)
                    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                        raw = await resp.aread()
                    results.append((i, resp.status_code, resp.headers.get("x-aimm-model", ""), raw))

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(8))), timeout=20)
    finally:
        stop.set()
        thread.join(5)
        a.set_faults(fail_rate=0.0, reset_connection=0.0)

    by_model: dict[str, int] = {}
    for i, status, model, raw in results:
        assert status == 200, (i, raw[:300])
        upstream_id = {"ma": "alpha", "mb": "bravo"}[model]
        by_model[model] = by_model.get(model, 0) + 1
        if i % 2:
            check_complete_stream(parse_sse(raw), upstream_id, f"flap {i}")
        else:
            assert raw.decode().count(expected_answer(upstream_id, f"flap {i}")) == 1
    assert len(results) == len({i for i, *_ in results}) >= 40, len(results)
    assert cycles >= 2, cycles
    assert by_model.get("ma", 0) > 0 and by_model.get("mb", 0) > 0, by_model
    assert gw.gateway.router.snapshot()["ma"].times_opened >= 2  # the breaker really was exercised
    assert wait_until(lambda: all(s.in_flight == 0 for s in gw.gateway.router.snapshot().values()), 3)
