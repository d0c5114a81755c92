"""Hardening without a middleware layer: the hot POST routes keep the direct path and still get
the security headers (and CORS), over real HTTP on loopback.

Whether a request went through Starlette's middleware stack is seen by counting the calls that
reach it (`app.middleware_stack`, built by the lifespan at start-up); GET routes still go through
it, which shows the count works.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.types import Receive, Scope, Send

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
from tests.gateway.conftest import API_KEY, base_config
from tests.servers import run_asgi_app

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


@contextmanager
def served(tmp_path: Path, **extra: Any) -> Iterator[tuple[httpx.Client, list[str]]]:
    """A real gateway on loopback; yields a client and the paths that reached Starlette's stack."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base_config([{"name": "m", "provider": "mock"}], **extra)))
    app = create_app(Gateway.from_file(path))
    through_starlette: list[str] = []
    with run_asgi_app(app) as url:
        inner = app.middleware_stack
        assert inner is not None  # built by the lifespan

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            through_starlette.append(scope.get("path", scope["type"]))
            await inner(scope, receive, send)

        app.middleware_stack = counting
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30) as client:
            yield client, through_starlette


def _hardened(resp: httpx.Response, cache_control: str = "no-store") -> bool:
    """The security headers, and `no-store` unless the response set its own caching."""
    security = all(resp.headers.get(k) == v for k, v in SECURITY.items())
    return security and resp.headers.get_list("cache-control") == [cache_control]


def test_hot_routes_take_the_direct_path_with_security_headers(tmp_path: Path) -> None:
    with served(tmp_path) as (c, through_starlette):
        plain = c.post("/v1/chat/completions", json=CHAT)
        with c.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as streamed:
            events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
        messages = c.post("/v1/messages", json=ANTHROPIC)
        bad = c.post("/v1/chat/completions", json={"model": "m"})  # no messages: 400 from the handler
        assert through_starlette == []
        listed = c.get("/v1/models")
        assert through_starlette == ["/v1/models"]
    assert plain.status_code == 200 and plain.json()["choices"][0]["message"]["content"]
    assert streamed.status_code == 200 and events[-1] == "data: [DONE]"
    assert messages.status_code == 200 and messages.json()["type"] == "message"
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert _hardened(streamed, cache_control="no-cache")  # an SSE reply's own header is kept
    for resp in (plain, messages, bad, listed):
        assert _hardened(resp), (resp.request.url, dict(resp.headers))
        assert resp.headers.get_list("x-content-type-options") == ["nosniff"]  # added once
    assert "strict-transport-security" not in plain.headers  # plain HTTP: no HSTS


def test_security_headers_off_leaves_direct_responses_alone(tmp_path: Path) -> None:
    with served(tmp_path, hardening={"security_headers": False}) as (c, through_starlette):
        plain = c.post("/v1/chat/completions", json=CHAT)
        listed = c.get("/v1/models")
    assert through_starlette == ["/v1/models"]
    assert plain.status_code == 200 and listed.status_code == 200
    assert "x-content-type-options" not in plain.headers and "x-content-type-options" not in listed.headers


def test_cors_allow_list_applies_to_direct_routes(tmp_path: Path) -> None:
    cors = {"cors": {"allow_origins": ["https://app.example"]}}
    with served(tmp_path, hardening=cors) as (c, through_starlette):
        allowed = c.post("/v1/chat/completions", json=CHAT, headers={"origin": "https://app.example"})
        other = c.post("/v1/chat/completions", json=CHAT, headers={"origin": "https://evil.example"})
        preflight = c.options(
            "/v1/chat/completions",
            headers={"origin": "https://app.example", "access-control-request-method": "POST"},
        )
    assert through_starlette == []  # the preflight is CORS's own answer; the POSTs took the direct path
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in allowed.headers["access-control-expose-headers"]
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "https://app.example"
    for resp in (allowed, other, preflight):
        assert _hardened(resp)
