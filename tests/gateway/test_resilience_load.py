"""Resilience under load over real HTTP: the retry budget in a total outage, hedging, a client
that walks away mid-stream, and a mixed-fault soak where nothing may be lost or hang."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.routing import RetryBudget
from tests.gateway.conftest import RunningGateway, Upstream, base_config
from tests.gateway.resilience_helpers import (
    admin_status,
    api_client,
    assert_clean_error,
    async_api_client,
    chat_body,
    check_complete_stream,
    check_errored_stream,
    expected_answer,
    gather_limited,
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
IDS = {"ma": "alpha", "mb": "bravo", "mc": "charlie"}


def _three_target_gateway(
    upstreams: Upstreams, start_gateway: Start, faults: dict[str, Any], **route: Any
) -> tuple[RunningGateway, list[Upstream]]:
    ups = [upstreams("openai", **faults) for _ in IDS]
    gw = start_gateway(
        base_config(
            [model_for(name, up, upstream_id) for (name, upstream_id), up in zip(IDS.items(), ups, strict=True)],
            routes=[{"name": "trio", "targets": [{"model": name} for name in IDS], **route}],
        )
    )
    return gw, ups


def _budget_bound(ratio: float, requests: int, elapsed_s: float) -> float:
    """Most retries a RetryBudget can grant: a full bucket, `ratio` per request, and the
    trickle over the time the budget existed (parameters read from RetryBudget itself)."""
    probe = RetryBudget(ratio)
    return probe.capacity + probe.ratio * requests + probe.min_per_s * elapsed_s


# -- retry budget ---------------------------------------------------------------------------------


@pytest.mark.timeout(40)
async def test_retry_budget_bounds_extra_load_in_a_total_outage(upstreams: Upstreams, start_gateway: Start) -> None:
    # Breakers that never open: every request reaches an upstream, so only the budget stands
    # between 100 client requests and 300 upstream attempts.
    gw, ups = _three_target_gateway(
        upstreams,
        start_gateway,
        {"fail_rate": 1.0, "status_code": 500},
        retries={"attempts": 3, "backoff_initial_s": 0.001, "backoff_max_s": 0.005, "budget_ratio": 0.2},
        circuit_breaker={"failure_threshold": 10_000, "min_requests": 10_000},
    )
    n = 100
    started = time.monotonic()
    async with async_api_client(gw) as client:

        async def one(i: int) -> httpx.Response:
            return await client.post("/v1/chat/completions", json=chat_body(f"outage {i}", model="trio"))

        responses = await asyncio.wait_for(gather_limited(n, 20, one), timeout=30)
    elapsed = time.monotonic() - started

    for resp in responses:
        assert_clean_error(resp.status_code, resp.content, frozenset({502}))
    attempts = sum(upstream_count(up) for up in ups)
    retries = attempts - n  # each request made exactly one first attempt
    bound = _budget_bound(0.2, n, elapsed)
    assert retries <= bound, f"{retries} retries for {n} requests; the budget allows {bound:.1f}"
    assert retries >= RetryBudget(0.2).capacity - 1  # the budget was really spent, not unused
    assert metric(metrics(gw), "ai_multimodel_retries_total") == retries


@pytest.mark.timeout(40)
async def test_total_outage_with_breakers_every_client_gets_a_clean_error(
    upstreams: Upstreams, start_gateway: Start
) -> None:
    gw, ups = _three_target_gateway(
        upstreams,
        start_gateway,
        {"fail_rate": 1.0, "status_code": 500, "latency_ms": 5},
        retries={"attempts": 3, "backoff_initial_s": 0.001, "backoff_max_s": 0.005},
        circuit_breaker={"failure_threshold": 3, "timeout_s": 0.5},
    )
    n = 120
    started = time.monotonic()
    async with async_api_client(gw) as client:

        async def one(i: int) -> tuple[int, bytes, str | None, float]:
            t0 = time.monotonic()
            body = chat_body(f"outage {i}", model="trio", stream=i % 3 == 0)
            async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                raw = await resp.aread()
            return resp.status_code, raw, resp.headers.get("retry-after"), time.monotonic() - t0

        results = await asyncio.wait_for(gather_limited(n, 20, one), timeout=30)
    elapsed = time.monotonic() - started

    statuses = Counter(status for status, *_ in results)
    for status, raw, retry_after, took in results:
        assert_clean_error(status, raw, frozenset({502, 503}))
        assert took < 5.0
        if status == 503:
            assert retry_after is not None and 0 <= int(retry_after) <= 1  # timeout_s 0.5, rounded up
    assert statuses[503] > 0, statuses  # the breakers opened and shed the load
    retries = metric(metrics(gw), "ai_multimodel_retries_total")
    assert retries <= _budget_bound(0.2, n, elapsed)
    assert sum(upstream_count(up) for up in ups) <= n + retries


# -- hedging --------------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_hedged_request_answers_from_the_fast_target_and_cancels_the_slow_one(
    upstreams: Upstreams, start_gateway: Start
) -> None:
    gw, a, b = pair_gateway(
        upstreams,
        start_gateway,
        {"latency_ms": 2000},
        "hedge",
        hedging={"enabled": True, "delay_s": 0.05},
    )
    with api_client(gw) as client:
        started = time.monotonic()
        resp = client.post("/v1/chat/completions", json=chat_body("hedge me", model="hedge"))
        elapsed = time.monotonic() - started
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == expected_answer("bravo", "hedge me")
        assert resp.headers["x-aimm-model"] == "mb"
        assert resp.headers["x-aimm-route-reason"]
        assert elapsed < 1.2, f"hedged answer took {elapsed:.2f}s; the slow target needs 2 s"
        # The slow attempt was sent, then cancelled: no longer in flight, and no verdict on A.
        assert upstream_count(a) == 1 and upstream_count(b) == 1
        snap = gw.gateway.router.snapshot()["ma"]
        assert (snap.in_flight, snap.consecutive_failures, snap.circuit_state) == (0, 0, "closed")
        assert metric(metrics(gw), "ai_multimodel_hedges_total", route="hedge") == 1

        # A fast primary answers within the hedge delay: no hedge is sent.
        a.set_faults(latency_ms=0)
        resp = client.post("/v1/chat/completions", json=chat_body("no hedge", model="hedge"))
        assert (resp.headers["x-aimm-model"], resp.headers["x-aimm-attempts"]) == ("ma", "1")
        assert metric(metrics(gw), "ai_multimodel_hedges_total", route="hedge") == 1
        assert upstream_count(b) == 1


def test_hedged_stream_keeps_the_first_upstream_to_send_a_chunk(upstreams: Upstreams, start_gateway: Start) -> None:
    gw, _a, _b = pair_gateway(
        upstreams,
        start_gateway,
        {"first_byte_delay_ms": 2000},
        "hedge",
        hedging={"enabled": True, "delay_s": 0.05},
    )
    with api_client(gw) as client:
        started = time.monotonic()
        with client.stream(
            "POST", "/v1/chat/completions", json=chat_body("hedge me", model="hedge", stream=True)
        ) as resp:
            frames = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        elapsed = time.monotonic() - started
        assert resp.status_code == 200 and resp.headers["x-aimm-model"] == "mb"
        assert resp.headers["x-aimm-route-reason"].startswith("hedge: mb answered before ma")
        assert frames[-1] == "[DONE]"
        text = "".join(
            (c["choices"][0]["delta"].get("content") or "") for c in map(orjson.loads, frames[:-1]) if c["choices"]
        )
        assert text == expected_answer("bravo", "hedge me")  # one model's output, whole, never spliced
        assert elapsed < 1.2, f"hedged stream took {elapsed:.2f}s; the slow target needs 2 s to its first chunk"
        snap = gw.gateway.router.snapshot()["ma"]
        assert (snap.in_flight, snap.consecutive_failures) == (0, 0)  # the loser was cancelled, not failed
        assert metric(metrics(gw), "ai_multimodel_hedges_total", route="hedge") == 1
        assert metric(metrics(gw), "ai_multimodel_fallbacks_total", route="hedge") == 0


# -- a client that walks away ------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_client_gone_mid_stream_frees_in_flight_and_the_half_open_probe(
    upstreams: Upstreams, start_gateway: Start
) -> None:
    timeout_s = 1.5
    gw, a, _b = pair_gateway(
        upstreams,
        start_gateway,
        {"fail_rate": 1.0},
        "pair",
        circuit_breaker={"failure_threshold": 1, "timeout_s": timeout_s, "half_open_requests": 1},
    )
    with api_client(gw) as client:
        assert client.post("/v1/chat/completions", json=chat_body("trip", model="pair")).status_code == 200
        assert gw.gateway.router.snapshot()["ma"].times_opened == 1
        a.set_faults(fail_rate=0.0, stream_chunks=3, chunk_interval_ms=200)  # healthy again, but slow
        assert wait_until(lambda: admin_status(gw)["ma"]["circuit_state"] == "half_open", timeout_s + 3)

        # The probe is a stream whose client hangs up after the first chunk.
        probe_started = time.monotonic()
        with client.stream("POST", "/v1/chat/completions", json=chat_body("bye", model="pair", stream=True)) as resp:
            assert resp.headers["x-aimm-model"] == "ma"
            assert next(resp.iter_raw()).startswith(b"data: ")
        assert wait_until(lambda: gw.gateway.router.snapshot()["ma"].in_flight == 0, 1)

        # The probe slot came back with it (a lost one would only be reclaimed after a whole
        # timeout_s): still half-open, admitting a probe now, and the next request closes it.
        status = admin_status(gw)["ma"]
        assert time.monotonic() - probe_started < timeout_s, "too slow to tell a freed slot from a reclaimed one"
        assert (status["circuit_state"], status["retry_in_s"]) == ("half_open", None)
        a.set_faults(chunk_interval_ms=0)
        resp = client.post("/v1/chat/completions", json=chat_body("probe again", model="pair"))
        assert (resp.headers["x-aimm-model"], resp.headers["x-aimm-attempts"]) == ("ma", "1")
        assert admin_status(gw)["ma"]["circuit_state"] == "closed"


# -- mixed-fault soak -------------------------------------------------------------------------------

SOAK_REQUESTS = 300
SOAK_CONCURRENCY = 20
# 1 s queueing + 3 attempts x 1 s total timeout + backoff, with room for a busy machine
SOAK_REQUEST_LIMIT_S = 15.0
_HEALTHY = FaultSettings().model_dump()


def _chaos_profiles(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {},
        {},
        {"fail_rate": 0.3, "status_code": 500},
        {"fail_rate": 0.5, "status_code": 503, "retry_after_ms": 0},
        {"reset_connection": 0.4},
        {"cut_stream_after": rng.randint(1, 6)},  # streams break mid-way
        {"stream_error_after": rng.randint(1, 6)},
        {"latency_ms": 1500},  # past total_s and first_byte_s
        {"first_byte_delay_ms": 800},  # streams: past first_byte_s
        {"latency_ms": 80, "chunk_interval_ms": 15},  # slow but fine
    ]


@pytest.mark.timeout(90)
async def test_mixed_fault_soak_zero_lost_zero_hung(upstreams: Upstreams, start_gateway: Start) -> None:
    seed = int(os.environ.get("AIMM_SOAK_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"soak seed={seed} (set AIMM_SOAK_SEED to replay the same fault choices)")
    ratio = 0.5
    breaker_timeout = 0.5
    gw, ups = _three_target_gateway(
        upstreams,
        start_gateway,
        {"fail_rate": 0.3, "status_code": 500},
        retries={"attempts": 3, "backoff_initial_s": 0.005, "backoff_max_s": 0.02, "budget_ratio": ratio},
        circuit_breaker={"failure_threshold": 3, "timeout_s": breaker_timeout},
        timeouts={"connect_s": 1.0, "total_s": 1.0, "first_byte_s": 0.4, "stream_idle_s": 0.5},
        queue_timeout_s=1.0,  # when all three are open, wait (bounded) for one to half-open
    )

    # Chaos: every ~50 ms each upstream gets a new random fault profile.
    stop = threading.Event()
    changes = Counter[str]()

    def chaos() -> None:
        while not stop.is_set():
            for up in ups:
                profile = rng.choice(_chaos_profiles(rng))
                up.set_faults(**{**_HEALTHY, **profile})
                changes[",".join(sorted(profile)) or "healthy"] += 1
            stop.wait(0.05)

    outcomes: Counter[str] = Counter()
    slowest = 0.0

    async def one(client: httpx.AsyncClient, i: int) -> None:
        nonlocal slowest
        stream = i % 2 == 1
        prompt = f"soak request {i}"
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(SOAK_REQUEST_LIMIT_S):
                body = chat_body(prompt, model="trio", stream=stream)
                async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                    raw = await resp.aread()
        except TimeoutError:
            outcomes["hung"] += 1
            return
        slowest = max(slowest, time.monotonic() - t0)
        kind = "stream" if stream else "plain"
        if resp.status_code != 200:
            assert_clean_error(resp.status_code, raw)
            outcomes[f"{kind} error {resp.status_code}"] += 1
            return
        model = resp.headers["x-aimm-model"]
        assert resp.headers["x-aimm-route-reason"], "every answer says why its model was chosen"
        assert 1 <= int(resp.headers["x-aimm-attempts"]) <= 3
        if not stream:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            assert choice["finish_reason"] == "stop" and data["usage"]["total_tokens"] > 0
            assert data["model"] == IDS[model] and choice["message"]["content"] == expected_answer(IDS[model], prompt)
            outcomes["plain complete"] += 1
            return
        result = parse_sse(raw)
        if result.done:
            check_complete_stream(result, IDS[model], prompt)
            outcomes["stream complete"] += 1
        else:  # no [DONE]: only an error event may end it (a silent close fails here)
            check_errored_stream(result, IDS[model], prompt)
            outcomes["stream error event"] += 1

    thread = threading.Thread(target=chaos, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        async with async_api_client(gw, timeout=SOAK_REQUEST_LIMIT_S + 5) as client:
            await asyncio.wait_for(
                gather_limited(SOAK_REQUESTS, SOAK_CONCURRENCY, lambda i: one(client, i)), timeout=75
            )
    finally:
        stop.set()
        thread.join(5)
    elapsed = time.monotonic() - started
    summary = f"seed={seed} {elapsed:.1f}s slowest={slowest:.2f}s outcomes={dict(outcomes)} faults={dict(changes)}"
    print(summary)

    # Zero lost, zero hung: every request is accounted for with an answer or a clean error.
    assert outcomes["hung"] == 0, summary
    assert sum(outcomes.values()) == SOAK_REQUESTS, summary
    assert outcomes["plain complete"] > 0 and outcomes["stream complete"] > 0, summary
    # Bookkeeping survived it all: nothing left in flight, retries within the budget.
    assert wait_until(lambda: all(s.in_flight == 0 for s in gw.gateway.router.snapshot().values()), 3), summary
    retries = metric(metrics(gw), "ai_multimodel_retries_total")
    assert retries <= _budget_bound(ratio, SOAK_REQUESTS, elapsed), summary

    # And no breaker is stuck: with the faults gone, every target is back in service soon.
    for up in ups:
        up.set_faults(**_HEALTHY)
    served: Counter[str] = Counter()
    with api_client(gw) as sync_client:

        def all_closed() -> bool:
            resp = sync_client.post("/v1/chat/completions", json=chat_body("after the storm", model="trio"))
            assert resp.status_code == 200, resp.text
            served[resp.headers["x-aimm-model"]] += 1
            states = {m["circuit_state"] for m in admin_status(gw).values()}
            return states == {"closed"} and len(served) == len(IDS)

        assert wait_until(all_closed, 2 * breaker_timeout + 5, interval=0.05), (summary, admin_status(gw))
