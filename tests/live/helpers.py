"""A real WebSocket client (the `websockets` package) against a gateway served on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.gateway.conftest import ADMIN_TOKEN, API_KEY

Start = Callable[[dict[str, Any]], Any]


def ws_url(http_url: str, channels: str = "") -> str:
    url = http_url.replace("http://", "ws://") + "/api/v1/ws"
    return f"{url}?channels={channels}" if channels else url


def live_config(**extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "auth": {"api_keys": [{"name": "tests", "key": {"env": "AIMM_TEST_API_KEY"}, "role": "user"}]},
        "admin": {"token": {"env": "AIMM_TEST_ADMIN_TOKEN"}},
        "models": [
            {"name": "fast", "provider": "mock", "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}},
            {"name": "slow", "provider": "mock", "mock": {"latency_ms": 2}},
        ],
        "routes": [{"name": "smart", "targets": [{"model": "fast"}, {"model": "slow"}]}],
        "server": {"default_model": "smart", "reload_interval_s": 0.1},
    }
    config.update(extra)
    return config


def viewer(url: str, channels: str = "", **kwargs: Any) -> connect:
    """A connection with a key that may read (today the admin token; config keys are users)."""
    return connect(ws_url(url, channels), additional_headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, **kwargs)


def user_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}"}


async def next_on(ws: ClientConnection, channel: str, within: float = 5.0, **match: Any) -> dict[str, Any]:
    """The next message on `channel` whose fields equal `match` (others are skipped)."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {channel} message matching {match} within {within}s")
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        if msg.get("channel") == channel and all(msg.get(k) == v for k, v in match.items()):
            return msg


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll `condition` until it holds or `within` seconds pass; its last value."""
    for _ in range(int(within / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def send(method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(headers=headers or user_headers(), timeout=30) as client:
        return await client.request(method, url, **kwargs)
