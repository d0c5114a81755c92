"""GET /api/v1/ws: auth, each channel's events, subscribe/unsubscribe, metadata-only tail."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, Upstream, upstream_model
from tests.live.helpers import Start, live_config, next_on, send, user_headers, viewer, ws_url


def query(url: str, prompt: str = "hello", model: str = "fast") -> httpx.Response:
    resp = httpx.post(f"{url}/api/v1/query", json={"prompt": prompt, "model": model}, headers=user_headers())
    resp.raise_for_status()
    return resp


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"authorization": "Bearer wrong"}, 401), ({"authorization": f"Bearer {API_KEY}"}, 403)],
    ids=["no-key", "bad-key", "user-role"],
)
async def test_refused_without_a_key_or_below_viewer(
    start_gateway: Start, headers: dict[str, str], status: int
) -> None:
    gw = start_gateway(live_config())
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(gw.url, "metrics"), additional_headers=headers):
            pass
    assert info.value.response.status_code == status
    body = orjson.loads(info.value.response.body)
    assert body["error"]["type"] in ("authentication_error", "permission_error", "invalid_request_error")
    assert API_KEY not in info.value.response.body.decode()


async def test_browser_subprotocol_token_is_accepted_and_echoed(start_gateway: Start) -> None:
    gw = start_gateway(live_config())
    async with connect(ws_url(gw.url, "models"), subprotocols=["aimm.v1", f"bearer.{ADMIN_TOKEN}"]) as ws:
        assert ws.subprotocol == "aimm.v1"
        hello = await next_on(ws, "control", type="hello")
        assert hello["identity"]["role"] == "admin" and hello["channels"] == ["models"]
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(gw.url), subprotocols=["aimm.v1", f"bearer.{API_KEY}"]):
            pass
    assert info.value.response.status_code == 403


async def test_unknown_channel_is_a_400(start_gateway: Start) -> None:
    gw = start_gateway(live_config())
    with pytest.raises(InvalidStatus) as info:
        async with viewer(gw.url, "metrics,gossip"):
            pass
    assert info.value.response.status_code == 400
    assert "gossip" in orjson.loads(info.value.response.body)["error"]["message"]


async def test_metrics_snapshots_every_second_and_numbers_move(start_gateway: Start) -> None:
    gw = start_gateway(live_config())
    async with viewer(gw.url, "metrics") as ws:
        first = await next_on(ws, "metrics", type="snapshot")  # the welcome snapshot, at once
        assert first["data"]["requests_total"] == 0
        for _ in range(3):
            query(gw.url)
        data: dict[str, Any] = {}
        for _ in range(4):  # the next ticks, about a second apart
            data = (await next_on(ws, "metrics", type="snapshot", within=3))["data"]
            if data["requests_total"] == 3:
                break
        assert data["requests_total"] == 3
        assert data["models"]["fast"]["requests_total"] == 3
        assert float(data["spend_usd_total"]) > 0 and data["latency_ms"]["p50"] is not None
        assert set(data) >= {"requests_per_second", "error_rate", "cost_per_hour_usd", "latency_ms"}


async def test_requests_tail_carries_metadata_never_the_prompt(start_gateway: Start) -> None:
    gw = start_gateway(live_config())
    secret_prompt = "my-very-private-prompt-text-42"
    async with viewer(gw.url, "requests") as ws:
        await next_on(ws, "control", type="hello")
        resp = query(gw.url, secret_prompt)
        raw = await ws.recv()
        event = orjson.loads(raw)
        assert event["channel"] == "requests" and event["type"] == "request"
        data = event["data"]
        assert data["request_id"] == resp.json()["request_id"] and data["model"] == "fast"
        assert data["key"] == "tests" and data["status"] == 200 and data["ok"] is True
        assert data["prompt_tokens"] > 0 and float(data["cost_usd"]) > 0
        assert secret_prompt not in str(raw) and resp.json()["text"] not in str(raw)


async def test_subscribe_and_unsubscribe_messages(start_gateway: Start) -> None:
    gw = start_gateway(live_config())
    async with viewer(gw.url) as ws:
        await next_on(ws, "control", type="hello")
        await ws.send(orjson.dumps({"type": "subscribe", "channels": ["requests"]}).decode())
        assert (await next_on(ws, "control", type="subscribed"))["channels"] == ["requests"]
        query(gw.url)
        assert (await next_on(ws, "requests"))["data"]["model"] == "fast"
        await ws.send(orjson.dumps({"type": "unsubscribe", "channels": ["requests"]}).decode())
        assert (await next_on(ws, "control", type="subscribed"))["channels"] == []
        assert not gw.gateway.live.requests_subscribed
        await ws.send('{"type": "subscribe", "channels": ["nope"]}')
        assert "nope" in (await next_on(ws, "control", type="error"))["message"]


async def test_models_channel_sees_disable_and_enable_at_once(start_gateway: Start) -> None:
    gw = start_gateway(live_config())
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with viewer(gw.url, "models") as ws:
        status = await next_on(ws, "models", type="status")
        assert status["models"]["slow"]["enabled"] is True
        (await send("PATCH", f"{gw.url}/admin/models/slow", admin, json={"enabled": False})).raise_for_status()
        change = await next_on(ws, "models", type="model", within=2)
        assert change["model"] == "slow" and "enabled" in change["changed"]
        assert change["status"]["enabled"] is False and change["previous"]["enabled"] is True
        (await send("PATCH", f"{gw.url}/admin/models/slow", admin, json={"enabled": True})).raise_for_status()
        back = await next_on(ws, "models", type="model", within=2)
        assert back["status"]["enabled"] is True


async def test_breaker_open_is_a_model_change_and_an_alert(start_gateway: Start, upstreams: Any) -> None:
    upstream: Upstream = upstreams("openai", fail_rate=1.0, status_code=500)
    breaker = {"failure_threshold": 1, "timeout_s": 60}
    config = live_config(models=[upstream_model("flaky", upstream, circuit_breaker=breaker)], routes=[], server={})
    gw = start_gateway(config)
    async with viewer(gw.url, "models,alerts") as ws:
        await next_on(ws, "models", type="status")
        resp = await send("POST", f"{gw.url}/api/v1/query", json={"prompt": "x", "model": "flaky"})
        assert resp.status_code >= 500
        change = await next_on(ws, "models", type="model", model="flaky", within=3)
        assert change["status"]["circuit_state"] == "open"
        alert = await next_on(ws, "alerts", kind="breaker_open", within=3)
        assert alert["model"] == "flaky" and alert["level"] == "critical"


async def test_budget_thresholds_and_reload_failures_are_alerts(start_gateway: Start) -> None:
    budget = {"name": "tiny", "limit_usd": "0.00001", "thresholds": [50, 100]}
    gw = start_gateway(live_config(budgets=[budget]))
    async with viewer(gw.url, "alerts") as ws:
        await next_on(ws, "control", type="hello")
        query(gw.url, "a prompt long enough to cost more than the whole tiny budget " * 5)
        seen = {(await next_on(ws, "alerts", kind="budget_threshold", within=3))["threshold"] for _ in range(2)}
        assert seen == {50, 100}
        good = yaml.safe_load(gw.config_path.read_text())
        gw.config_path.write_text("models: [this is not: valid")
        alert = await next_on(ws, "alerts", kind="reload_failed", within=5)
        assert alert["level"] == "critical"
        gw.config_path.write_text(yaml.safe_dump(good))
