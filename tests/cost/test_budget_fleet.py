"""Budgets exact across replicas: 3 gateway processes, a real redis-server and PostgreSQL.

Each request costs exactly its reservation (input is free, the mock writes exactly `max_tokens`
tokens), so a budget worth 100 requests must serve exactly 100 of 300 concurrent ones: one more
would overspend, one fewer would mean a refusal while the reservation still fitted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aimm_gateway.budget.periods import window
from aimm_gateway.config import BudgetConfig
from aimm_gateway.state.redis import RedisState
from aimm_gateway.state.units import from_units
from aimm_gateway.store.postgres import PostgresStore
from aimm_gateway.store.sql import Scope
from tests.backing import PostgresServer, RedisServer
from tests.cost.procs import AIMM, GatewayProcess, start_gateway_process
from tests.cost.stores import fresh_postgres_dsn

KEY = "sk-fleet-test"
BUDGET = {"name": "fleet", "limit_usd": "0.5", "period": "daily", "action": "block"}
BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "tell me something long enough"}]}


def fleet_config(prefix: str) -> dict[str, Any]:
    return {
        "auth": {"api_keys": [{"name": "fleet-key", "key": {"env": "AIMM_FLEET_KEY"}}]},
        "models": [
            {
                "name": "m",
                "provider": "mock",
                "pricing": {"input_per_1k": "0", "output_per_1k": "1"},  # 5 tokens = $0.005
                "mock": {"latency_ms": 20},
            }
        ],
        "budgets": [BUDGET],
        "state": {"redis": {"url": {"env": "AIMM_REDIS_URL"}, "timeout_ms": 5000, "key_prefix": prefix}},
        "store": {"postgres": {"dsn": {"env": "AIMM_DATABASE_URL"}}, "flush_interval_s": 0.2},
    }


async def _fire(urls: list[str], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers={"authorization": f"Bearer {KEY}"}) as client:
        calls = [client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=BODY) for i in range(n)]
        return await asyncio.gather(*calls)


async def _settled(dsn: str) -> Decimal:
    store = PostgresStore(dsn)
    await store.open()
    try:
        return from_units(await store.spend_units(0, 2**62, Scope()))
    finally:
        await store.close()


async def _redis_spent(url: str, prefix: str) -> Decimal:
    state = RedisState(url, timeout_ms=1000, key_prefix=prefix)
    try:
        return await state.spent(window(BudgetConfig.model_validate(BUDGET), datetime.now(UTC)).key)
    finally:
        await state.close()


@pytest.mark.timeout(240)
def test_three_replicas_never_overspend(
    redis_server: RedisServer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = asyncio.run(fresh_postgres_dsn(postgres_server))
    prefix = f"fleet{uuid.uuid4().hex[:6]}:"
    env = {"AIMM_FLEET_KEY": KEY, "AIMM_REDIS_URL": redis_server.url, "AIMM_DATABASE_URL": dsn}
    config = fleet_config(prefix)
    (tmp_path / "db.yaml").write_text(yaml.safe_dump(config))
    upgrade = [AIMM, "db", "upgrade", "--config", str(tmp_path / "db.yaml")]
    subprocess.run(upgrade, env={**os.environ, **env}, check=True, timeout=60)  # the deploy step
    fleet: list[GatewayProcess] = []
    try:
        fleet = [start_gateway_process(config, tmp_path, env, f"gw{i}") for i in range(3)]
        responses = asyncio.run(_fire([g.url for g in fleet], 300))
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 100, 429: 200}, statuses
        for refused in (r for r in responses if r.status_code == 429):
            error = refused.json()["error"]
            assert (
                error["type"] == "insufficient_quota"
                and "'fleet'" in error["message"]
                and "resets at" in error["message"]
            )
        assert asyncio.run(_redis_spent(redis_server.url, prefix)) == Decimal("0.5")
        # The same status from every replica (from the shared store; rows flush within 0.2 s).
        asyncio.run(asyncio.sleep(1.0))
        seen = {
            httpx.get(f"{g.url}/api/v1/budgets", headers={"authorization": f"Bearer {KEY}"}).json()["budgets"][0][
                "costThisPeriod"
            ]
            for g in fleet
        }
        assert seen == {"0.5000"}
        assert all(g.terminate() in (0, -15) for g in fleet)  # graceful, then uvicorn re-raises
        assert asyncio.run(_settled(dsn)) == Decimal("0.5")
        # Every process restarted: the spend survives and still blocks.
        fleet = [start_gateway_process(config, tmp_path, env, f"again{i}") for i in range(3)]
        seen = {
            httpx.get(f"{g.url}/api/v1/budgets", headers={"authorization": f"Bearer {KEY}"}).json()["budgets"][0][
                "costThisPeriod"
            ]
            for g in fleet
        }
        assert seen == {"0.5000"}
        again = httpx.post(f"{fleet[1].url}/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {KEY}"})
        assert again.status_code == 429
    finally:
        for g in fleet:
            g.kill()
