"""Limits across a fleet: 3 gateway processes sharing one real redis-server, one concurrent client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.backing import RedisServer
from tests.servers import gateway_processes

KEY = "sk-fleet-0123456789"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@contextmanager
def fleet(tmp_path: Path, redis: RedisServer, limits: dict[str, Any], latency_ms: float) -> Iterator[list[str]]:
    config = {
        "auth": {"api_keys": [{"name": "fleet", "key": {"env": "AIMM_FLEET_KEY"}}]},
        "models": [{"name": "m", "provider": "mock", "mock": {"latency_ms": latency_ms}}],
        # fail closed: a Redis timeout shows up as 503, never as a limit silently not enforced
        "limits": {**limits, "fail_mode": "closed"},
        "state": {
            "redis": {
                "url": {"env": "AIMM_FLEET_REDIS"},
                "key_prefix": f"fleet-{uuid.uuid4().hex[:8]}:",
                "timeout_ms": 2000,  # 3 gateways + client + redis share 2 busy cores here
            }
        },
        "hardening": {"audit": {"sink": "off"}},
    }
    env = {"AIMM_FLEET_KEY": KEY, "AIMM_FLEET_REDIS": redis.url}
    with gateway_processes(config, env, tmp_path, 3) as urls:
        yield urls


async def _spray(urls: list[str], n: int) -> list[int]:
    """n requests at once, spread round-robin over the processes."""
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {KEY}"}, timeout=30) as c:
        calls = [c.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=CHAT) for i in range(n)]
        return [r.status_code for r in await asyncio.gather(*calls)]


def test_three_processes_share_one_rpm_limit(tmp_path: Path, redis_server: RedisServer) -> None:
    left = 60 - time.time() % 60
    if left < 15:  # one fixed window for the whole burst
        time.sleep(left + 0.2)
    with fleet(tmp_path, redis_server, {"global": {"requests_per_minute": 20}}, latency_ms=0) as urls:
        codes = asyncio.run(_spray(urls, 60))
    assert codes.count(200) == 20 and codes.count(429) == 40


def test_three_processes_share_one_concurrency_limit(tmp_path: Path, redis_server: RedisServer) -> None:
    with fleet(tmp_path, redis_server, {"global": {"concurrent_requests": 4}}, latency_ms=1500) as urls:
        codes = asyncio.run(_spray(urls, 12))
        assert 1 <= codes.count(200) <= 4 and codes.count(429) == 12 - codes.count(200)
        again = asyncio.run(_spray(urls, 3))  # the slots came back when those finished
    assert again == [200, 200, 200]
