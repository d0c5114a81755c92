"""Regression tests for the findings of the probe of main (issue 9). Each failed on main."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from aimm_gateway.logs import JsonFormatter
from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, RunningGateway, base_config
from tests.security.echo_upstream import echo_upstream

Start = Callable[[dict[str, Any]], RunningGateway]
UPSTREAM_KEY = "upstream-secret-key"  # conftest puts it in AIMM_TEST_UPSTREAM_KEY
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _echo_model(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "m",
        "provider": "openai_compatible",
        "base_url": f"{url}/v1",
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"},
        **extra,
    }


def test_probe2_huge_message_lists_are_refused_and_health_keeps_answering(start_gateway: Start) -> None:
    gw = start_gateway(base_config([{"name": "m", "provider": "mock"}]))
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}] * 120_000})
    assert len(body) > 3_000_000

    async def run() -> tuple[list[httpx.Response], float]:
        async with httpx.AsyncClient(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
            big = [
                asyncio.create_task(
                    c.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
                )
                for _ in range(8)
            ]
            await asyncio.sleep(0.05)
            worst = 0.0
            while not all(t.done() for t in big):
                started = time.perf_counter()
                assert (await c.get("/health")).status_code == 200
                worst = max(worst, time.perf_counter() - started)
                await asyncio.sleep(0.02)
            return [t.result() for t in big], worst

    responses, worst = asyncio.run(run())
    for resp in responses:
        assert resp.status_code == 413 and "120000 messages; the limit is 2048" in resp.json()["error"]["message"]
    assert worst < 2.0, f"/health stalled {worst:.2f} s behind large bodies"


def test_probe4_upstream_error_is_scrubbed_for_client_stats_and_log(start_gateway: Start) -> None:
    with echo_upstream(status=400) as up:
        gw = start_gateway(base_config([_echo_model(up.url)]))
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        logging.getLogger().addHandler(handler)
        try:
            with gw.client() as c:
                resp = c.post("/v1/chat/completions", json=CHAT)
                stats = c.get("/api/v1/stats").text
        finally:
            logging.getLogger().removeHandler(handler)
    assert up.calls and up.calls[0]["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the key really was echoed
    message = resp.json()["error"]["message"]
    assert resp.status_code == 400 and "Incorrect API key provided: [REDACTED]" in message
    for text in (message, stats, stream.getvalue()):
        assert UPSTREAM_KEY not in text and "sk-proj-ABCDEFGHIJKLMNOPQRSTUV" not in text
    assert "[REDACTED]" in stats and "upstream failure" in stream.getvalue()
    assert httpx.get(f"{gw.url}/api/v1/stats").status_code == 401  # and stats need a credential now


def test_probe4_field_name_with_newline_cannot_forge_a_log_line() -> None:
    record = logging.LogRecord(
        "aimm", logging.WARNING, __file__, 1, "bad field %s", ('x\n{"level":"error","msg":"forged"}',), None
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line and orjson.loads(line)["msg"].endswith('"forged"}')


def test_probe5_admin_cannot_point_a_model_at_gateway_secrets(
    start_gateway: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-gateway-own-openai-key-000000")
    monkeypatch.setenv("AIMM_UPSTREAM_TEAM_A", "team-a-upstream-key")
    with echo_upstream(status=200) as attacker:
        config = base_config([{"name": "m", "provider": "mock"}])
        config["admin"]["secret_refs"] = {"env_prefixes": ["AIMM_UPSTREAM_"]}
        gw = start_gateway(config)
        admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=gw.url, headers=admin, timeout=30) as c:
            for ref in ({"env": "AIMM_TEST_ADMIN_TOKEN"}, {"file": "/etc/hostname"}, {"env": "AIMM_UPSTREAM/../X"}):
                model = {
                    "name": "evil",
                    "provider": "openai_compatible",
                    "base_url": f"{attacker.url}/v1",
                    "api_key": ref,
                }
                resp = c.post("/admin/models", json=model)
                assert resp.status_code == 403 and "not allowed" in resp.json()["error"]["message"], ref
            ok = c.post(
                "/admin/models",
                json={
                    "name": "team-a",
                    "provider": "openai_compatible",
                    "base_url": f"{attacker.url}/v1",
                    "api_key": {"env": "AIMM_UPSTREAM_TEAM_A"},
                },
            )
            assert ok.status_code == 201
            # No explicit key: the provider's default variable (OPENAI_API_KEY) is not lent to an admin-added model.
            implicit = c.post(
                "/admin/models", json={"name": "implicit", "provider": "openai", "base_url": f"{attacker.url}/v1"}
            )
            assert implicit.status_code == 201 and implicit.json()["available"] is False
        with gw.client() as c:
            c.post("/v1/chat/completions", json={**CHAT, "model": "team-a"})
            c.post("/v1/chat/completions", json={**CHAT, "model": "implicit"})
    sent = [call["authorization"] for call in attacker.calls]
    assert sent == ["Bearer team-a-upstream-key"]  # the allowed key only; never the admin token or OPENAI_API_KEY


def test_probe6_upstream_401_is_not_retried(start_gateway: Start) -> None:
    with echo_upstream(status=401) as up:
        gw = start_gateway(base_config([_echo_model(up.url)]))
        with gw.client() as c:
            resp = c.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 502 and len(up.calls) == 1


def test_probe6_request_ids_are_validated(start_gateway: Start) -> None:
    gw = start_gateway(base_config([{"name": "m", "provider": "mock"}]))
    with gw.client() as c:
        bad = c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "<script>alert(1)</script>"})
        good = c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "trace-42.a:b"})
        long = c.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "a" * 129})
    assert bad.status_code == 200 and "<" not in bad.headers["x-request-id"] and len(bad.headers["x-request-id"]) == 32
    assert good.headers["x-request-id"] == "trace-42.a:b"
    assert len(long.headers["x-request-id"]) == 32
