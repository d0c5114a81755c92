"""One replica, in-process state: the budget's spend comes back from the usage store after a restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aimm_gateway.budget.services import CostServices
from aimm_gateway.config import parse_config
from aimm_gateway.metrics import GatewayMetrics
from tests.gateway.conftest import RunningGateway, base_config

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "say something long"}]}


def test_spend_survives_a_restart(start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path) -> None:
    config = base_config(
        [{"name": "m", "provider": "mock", "pricing": {"input_per_1k": "0", "output_per_1k": "1"}}],
        budgets=[{"name": "cap", "limit_usd": "0.01", "period": "monthly", "action": "block"}],
        store={"sqlite_path": str(tmp_path / "usage.db"), "flush_interval_s": 0.05},
    )
    first = start_gateway(config)
    with first.client() as c:
        assert [c.post("/v1/chat/completions", json=BODY).status_code for _ in range(2)] == [200, 200]
    time.sleep(0.5)  # the writer flushes every 50 ms
    second = start_gateway(config)  # a new process's memory: the counter starts empty, then is rebuilt
    with second.client() as c:
        refused = c.post("/v1/chat/completions", json=BODY)
        status = c.get("/api/v1/budgets").json()["budgets"][0]
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "insufficient_quota"
    assert status["costThisPeriod"] == "0.0100" and status["percentUsed"] == "100.0"


def test_reload_says_state_and_store_need_a_restart(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    before = parse_config({})
    services = CostServices(before, GatewayMetrics())
    with caplog.at_level(logging.WARNING, "aimm.budget"):
        services.check_reload(parse_config({"budgets": [{"name": "b", "limit_usd": "1"}]}))
        assert not caplog.records  # budgets reload live
        services.check_reload(parse_config({"store": {"sqlite_path": str(tmp_path / "x.db")}}))
    assert "take effect when the gateway restarts" in caplog.records[0].getMessage()
