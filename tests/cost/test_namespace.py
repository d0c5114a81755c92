"""The gateway's namespace: usage rows carry it, namespace-scoped budgets count only its requests.

`server.namespace`, else the POD_NAMESPACE variable the operator sets from the downward API.
The usage store may be shared by gateways of several namespaces (one PostgreSQL): a budget of
one namespace counts that namespace's rows only, in its status and when rebuilt at start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimm_gateway.config import parse_config
from aimm_gateway.runtime import gateway_namespace
from aimm_gateway.store.rows import UsageRow
from aimm_gateway.store.sqlite import SqliteStore
from tests.cost.stores import wait_for_rows
from tests.gateway.conftest import API_KEY, RunningGateway, base_config

PRICED = {"input_per_1k": "0", "output_per_1k": "1"}  # max_tokens=5 costs exactly $0.005
BODY = {"model": "big", "max_tokens": 5, "messages": [{"role": "user", "content": "say something long"}]}


async def _seed_other_namespace(db: Path) -> None:
    """$1 spent by a gateway of namespace ns-b that shares this store."""
    store = SqliteStore(db)
    await store.open()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    row = UsageRow(now_ms - 60_000, "elsewhere-1", key_name="tests", namespace="ns-b", requested="big", model="big")
    row.cost_units = 10_000_000_000  # $1 in 1e-10 USD units
    await store.insert([row])
    await store.close()


def test_namespace_scoped_budgets_count_their_namespace_only(
    start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path
) -> None:
    db = tmp_path / "usage.db"
    asyncio.run(_seed_other_namespace(db))
    budgets = [
        {"name": "ns-a-cap", "limit_usd": "0.01", "action": "block", "namespace": "ns-a"},
        {"name": "ns-b-cap", "limit_usd": "0.001", "action": "block", "namespace": "ns-b"},  # not this gateway's
    ]
    config = base_config(
        [{"name": "big", "provider": "mock", "pricing": PRICED}],
        server={"namespace": "ns-a"},
        budgets=budgets,
        store={"sqlite_path": str(db), "flush_interval_s": 0.05},
    )
    gw = start_gateway(config)
    with gw.client() as client:
        # ns-b's $1 in the shared store is not ns-a's: rebuilt at start, ns-a-cap starts at $0.
        assert [client.post("/v1/chat/completions", json=BODY).status_code for _ in range(2)] == [200, 200]
        refused = client.post("/v1/chat/completions", json=BODY)
        assert refused.status_code == 429 and "budget 'ns-a-cap' is exhausted" in refused.json()["error"]["message"]
        assert len(wait_for_rows(db, "namespace", 4)) == 4
        status = {b["name"]: b for b in client.get("/api/v1/budgets").json()["budgets"]}
    assert status["ns-a-cap"]["costThisPeriod"] == "0.0100" and status["ns-a-cap"]["source"] == "store"
    assert status["ns-b-cap"]["costThisPeriod"] == "1.0000"  # its namespace's rows, not ours
    assert [tuple(r) for r in wait_for_rows(db, "namespace, status", 4)] == [
        ("ns-b", 200),
        ("ns-a", 200),
        ("ns-a", 200),
        ("ns-a", 429),
    ]


def test_namespace_defaults_to_pod_namespace(
    start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "from-downward-api")
    assert gateway_namespace(parse_config({})) == "from-downward-api"
    assert gateway_namespace(parse_config({"server": {"namespace": "explicit"}})) == "explicit"
    db = tmp_path / "usage.db"
    config = base_config(
        [{"name": "big", "provider": "mock"}], store={"sqlite_path": str(db), "flush_interval_s": 0.05}
    )
    gw = start_gateway(config)
    resp = httpx.post(f"{gw.v1}/chat/completions", json=BODY, headers={"authorization": f"Bearer {API_KEY}"})
    assert resp.status_code == 200
    assert [r["namespace"] for r in wait_for_rows(db, "namespace", 1)] == ["from-downward-api"]
    monkeypatch.delenv("POD_NAMESPACE")
    assert gateway_namespace(parse_config({})) is None
