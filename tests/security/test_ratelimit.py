"""Rate limits in one process: rpm/tpm/concurrency per key, IP and globally; 429 shape and headers;
failed auth throttled per IP (probe 3); Redis down: fail open or closed, counted, no hang."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from aimm_gateway.canonical import Usage
from aimm_gateway.config import LimitsSettings
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.security.audit import AuditLog
from aimm_gateway.security.identity import Identity, KeyLimits, Role
from aimm_gateway.security.metrics import SecurityMetrics
from aimm_gateway.security.services import SecurityServices
from aimm_gateway.stages.base import Outcome, RequestContext
from aimm_gateway.stages.ratelimit import RateLimit, duration
from aimm_gateway.state.memory import MemoryState
from tests.backing import free_port
from tests.gateway.conftest import API_KEY, RunningGateway, base_config

Start = Callable[[dict[str, Any]], RunningGateway]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _minute_safe() -> None:
    # Fixed one-minute windows: don't let a test straddle a boundary.
    left = 60 - time.time() % 60
    if left < 8:
        time.sleep(left + 0.2)


def test_per_key_rpm_429_shape_and_headers(start_gateway: Start) -> None:
    _minute_safe()
    gw = start_gateway(base_config([{"name": "m", "provider": "mock"}], limits={"per_key": {"requests_per_minute": 3}}))
    with gw.client() as c:
        ok = [c.post("/v1/chat/completions", json=CHAT) for _ in range(3)]
        assert [r.status_code for r in ok] == [200, 200, 200]
        assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
        assert ok[0].headers["x-ratelimit-limit-requests"] == "3"
        assert ok[0].headers["x-ratelimit-reset-requests"].endswith("s")
        over = c.post("/v1/chat/completions", json=CHAT)
    assert over.status_code == 429
    err = over.json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded" and "this key" in err["message"]
    assert 1 <= int(over.headers["retry-after"]) <= 60 and over.headers["x-ratelimit-remaining-requests"] == "0"


def test_global_and_ip_limits_and_openai_sdk_sees_429(start_gateway: Start) -> None:
    import openai

    _minute_safe()
    gw = start_gateway(base_config([{"name": "m", "provider": "mock"}], limits={"per_ip": {"requests_per_minute": 2}}))
    client = openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "client address" in str(info.value)


def test_concurrency_limit(start_gateway: Start) -> None:
    config = base_config(
        [{"name": "m", "provider": "mock", "mock": {"latency_ms": 400}}],
        limits={"per_key": {"concurrent_requests": 2}},
    )
    gw = start_gateway(config)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30) as c:
            rs = await asyncio.gather(*(c.post("/v1/chat/completions", json=CHAT) for _ in range(6)))
            after = await c.post("/v1/chat/completions", json=CHAT)  # the slots were given back
            return [r.status_code for r in rs] + [after.status_code]

    codes = asyncio.run(burst())
    assert sorted(codes[:6]) == [200, 200, 429, 429, 429, 429] and codes[6] == 200


async def test_tokens_reserved_then_settled() -> None:
    state = MemoryState()
    audit: list[dict[str, object]] = []
    security = SecurityServices(AuditLog(None, extra_sinks=[audit.append]), SecurityMetrics(GatewayMetrics()))
    stage = RateLimit(state, security, LimitsSettings())
    ident = Identity("k", Role.USER, limits=KeyLimits(tokens_per_minute=1000))
    ctx = RequestContext("r1", runtime=None, identity=ident, prompt_tokens=300)  # type: ignore[arg-type]
    await stage.before(ctx)
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == "700"
    await stage.after(ctx, Outcome(ok=True, usage=Usage(prompt_tokens=250, completion_tokens=150)))
    await stage.drain()  # the settle runs off the response path
    ctx2 = RequestContext("r2", runtime=None, identity=ident, prompt_tokens=100)  # type: ignore[arg-type]
    await stage.before(ctx2)
    assert ctx2.response_headers["x-ratelimit-remaining-tokens"] == "500"  # 1000 - 400 real - 100 reserved
    ctx3 = RequestContext("r3", runtime=None, identity=ident, prompt_tokens=600)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="tokens per minute"):
        await stage.before(ctx3)
    assert audit[-1]["action"] == "limit.hit" and audit[-1]["who"] == "k" and audit[-1]["target"] == "k:config:k"
    assert duration(63.2) == "1m4s" and duration(0.2) == "1s"


def test_failed_auth_is_throttled_per_ip(start_gateway: Start) -> None:
    """Probe finding 3: thousands of wrong keys per second drew no 429."""
    _minute_safe()
    gw = start_gateway(base_config([{"name": "m", "provider": "mock"}], limits={"auth_failures_per_minute": 10}))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        codes = [
            c.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer wrong-{i}"}).status_code
            for i in range(15)
        ]
        assert codes[:10] == [401] * 10 and codes[10:] == [429] * 5
        throttled = c.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer wrong"})
        assert throttled.status_code == 429 and "retry-after" in throttled.headers
        metrics = c.get("/metrics").text
    assert 'ai_multimodel_auth_failures_total{reason="invalid"}' in metrics
    assert 'ai_multimodel_rate_limited_total{reason="requests"}' in metrics


def test_sustained_load_on_one_key_draws_429(start_gateway: Start) -> None:
    """Probe finding 3: ~2,400 requests/s on one key drew no 429 (a per-key limit now holds)."""
    _minute_safe()
    gw = start_gateway(
        base_config([{"name": "m", "provider": "mock"}], limits={"per_key": {"requests_per_minute": 50}})
    )

    async def flood() -> list[int]:
        async with httpx.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30) as c:
            return [
                r.status_code
                for r in await asyncio.gather(*(c.post("/v1/chat/completions", json=CHAT) for _ in range(120)))
            ]

    codes = asyncio.run(flood())
    assert codes.count(200) == 50 and codes.count(429) == 70


@pytest.mark.parametrize(("mode", "expected"), [("open", 200), ("closed", 503)])
def test_redis_unreachable_fails_open_or_closed_without_hanging(
    start_gateway: Start, monkeypatch: pytest.MonkeyPatch, mode: str, expected: int
) -> None:
    monkeypatch.setenv("AIMM_TEST_REDIS", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    config = base_config(
        [{"name": "m", "provider": "mock"}],
        limits={"per_key": {"requests_per_minute": 100}, "fail_mode": mode},
        state={"redis": {"url": {"env": "AIMM_TEST_REDIS"}, "timeout_ms": 100}},
    )
    gw = start_gateway(config)
    with gw.client() as c:
        started = time.monotonic()
        resp = c.post("/v1/chat/completions", json=CHAT)
        elapsed = time.monotonic() - started
        metrics = c.get("/metrics").text
    assert resp.status_code == expected and elapsed < 3.0
    assert f'ai_multimodel_state_unavailable_total{{mode="{mode}",user="ratelimit"}} 1.0' in metrics


def test_model_limits_hold_for_the_model_a_route_picks(start_gateway: Start) -> None:
    """A route's pick counts against that model's `rate_limits`: over it, the route falls through
    to the next target; with no target left, 429 (issue 9: limits were skipped for routed requests)."""
    _minute_safe()
    models = [
        {"name": "a", "provider": "mock", "rate_limits": {"requests_per_minute": 2}},
        {"name": "b", "provider": "mock"},
    ]
    routes = [
        {"name": "spill", "targets": [{"model": "a"}], "fallbacks": ["b"]},
        {"name": "only-a", "targets": [{"model": "a"}]},
    ]
    gw = start_gateway(base_config(models, routes=routes))
    with gw.client() as c:
        first = [c.post("/v1/chat/completions", json={**CHAT, "model": "spill"}) for _ in range(2)]
        assert [r.headers["x-aimm-model"] for r in first] == ["a", "a"]
        assert first[1].headers["x-ratelimit-limit-requests"] == "2"
        assert first[1].headers["x-ratelimit-remaining-requests"] == "0"
        spilled = c.post("/v1/chat/completions", json={**CHAT, "model": "spill"})
        assert spilled.status_code == 200 and spilled.headers["x-aimm-model"] == "b"  # a is over: next target
        over = c.post("/v1/chat/completions", json={**CHAT, "model": "only-a"})
        direct = c.post("/v1/chat/completions", json={**CHAT, "model": "a"})
        stats = c.get("/metrics").text
    assert over.status_code == 429 and direct.status_code == 429
    err = over.json()["error"]
    assert err["type"] == "rate_limit_error" and "model a" in err["message"]
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["x-ratelimit-limit-requests"] == "2" and over.headers["x-ratelimit-remaining-requests"] == "0"
    assert 'ai_multimodel_rate_limited_total{reason="requests"} 3.0' in stats
