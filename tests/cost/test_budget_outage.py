"""Redis down: each budget applies its fail mode, never hangs; back up: counters reconciled from the store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aimm_gateway.budget.periods import window
from aimm_gateway.config import BudgetConfig
from aimm_gateway.state.redis import RedisState
from tests.backing import RedisServer
from tests.gateway.conftest import RunningGateway, base_config

OPEN = {
    "name": "open-cap",
    "limit_usd": "10",
    "period": "daily",
    "action": "block",
    "fail_mode": "open",
    "models": ["a"],
}
CLOSED = {
    "name": "closed-cap",
    "limit_usd": "10",
    "period": "daily",
    "action": "block",
    "fail_mode": "closed",
    "models": ["b"],
}
PRICE = {"input_per_1k": "0", "output_per_1k": "1"}  # max_tokens 5 -> $0.005


def _spent(url: str, prefix: str) -> Decimal:
    async def read() -> Decimal:
        state = RedisState(url, timeout_ms=1000, key_prefix=prefix)
        try:
            return await state.spent(window(BudgetConfig.model_validate(OPEN), datetime.now(UTC)).key)
        finally:
            await state.close()

    return asyncio.run(read())


@pytest.mark.timeout(120)
def test_fail_open_closed_and_reconcile(
    redis_server: RedisServer,
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIMM_TEST_REDIS_URL", redis_server.url)
    prefix = f"outage{uuid.uuid4().hex[:6]}:"
    config = base_config(
        [{"name": "a", "provider": "mock", "pricing": PRICE}, {"name": "b", "provider": "mock", "pricing": PRICE}],
        budgets=[OPEN, CLOSED],
        state={"redis": {"url": {"env": "AIMM_TEST_REDIS_URL"}, "timeout_ms": 200, "key_prefix": prefix}},
        store={"sqlite_path": str(tmp_path / "usage.db"), "flush_interval_s": 0.1},
    )
    gw = start_gateway(config)

    def ask(model: str) -> int:
        with gw.client() as c:
            body = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "say something long"}]}
            return c.post("/v1/chat/completions", json=body).status_code

    assert [ask("a"), ask("a")] == [200, 200]
    assert _spent(redis_server.url, prefix) == Decimal("0.01")
    redis_server.stop()  # no persistence: when it comes back, every counter is gone
    try:
        started = time.monotonic()
        assert [ask("a") for _ in range(3)] == [200, 200, 200]  # fail open: served, recorded in the store
        assert ask("b") == 503  # fail closed
        assert time.monotonic() - started < 10  # bounded by the 200 ms state timeout, never a hang
        with gw.client() as c:
            metrics = c.get("/metrics").text
        assert 'ai_multimodel_state_unavailable_total{mode="open",user="budget"}' in metrics
    finally:
        redis_server.start_again()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _spent(redis_server.url, prefix) != Decimal("0.025"):
        time.sleep(0.2)
    assert _spent(redis_server.url, prefix) == Decimal("0.025")  # 5 requests, rebuilt from the store
    assert ask("b") == 200
