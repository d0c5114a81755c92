"""The audit trail in the usage store: same fields and hash chain as the file, one chain per
writing process, verified from the store (`aimm audit verify --config`); SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.config import StoreSettings, parse_config
from aimm_gateway.metrics_families import CounterFamily
from aimm_gateway.security.audit import AuditLog
from aimm_gateway.security.audit_store import AuditStoreSink, verify_store
from aimm_gateway.security.identity import Identity, Role
from aimm_gateway.service import Gateway
from aimm_gateway.store.base import UsageStore
from aimm_gateway.store.postgres import PostgresStore
from aimm_gateway.store.sqlite import SqliteStore
from tests.cost.stores import fresh_sqlite_path, open_fresh_store
from tests.gateway.conftest import ADMIN_TOKEN, base_config
from tests.servers import run_asgi_app

ADMIN = Identity(name="root-ops", role=Role.ADMIN)
SETTINGS = StoreSettings(flush_interval_s=0.05)


def _dropped() -> CounterFamily:
    return CounterFamily("dropped", "test")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageStore]:
    backend = await open_fresh_store(request.param, request, tmp_path)
    yield backend
    await backend.close()


async def _write(store: UsageStore, n: int) -> tuple[AuditLog, list[dict[str, Any]]]:
    log = AuditLog(None)
    sink = AuditStoreSink(store, log.chain, SETTINGS, _dropped())
    sink.start()
    log.add_sink(sink)
    written = [
        log.record("key.create", actor=ADMIN, target=f"key-{i}", request_id=f"r{i}", overlap_s=1.5, ids=[i, "x"])
        for i in range(n)
    ]
    written.append(log.record("auth.failure", outcome="denied"))  # no actor, no detail
    await sink.close()
    return log, written


async def _execute(store: UsageStore, statement: str, *args: object) -> None:
    if isinstance(store, SqliteStore):
        await store._run(lambda conn: conn.execute(statement.replace("$1", "?").replace("$2", "?"), args))
    else:
        assert isinstance(store, PostgresStore)
        await store.pool.execute(statement, *args)


async def test_records_land_with_the_same_fields_and_chain(store: UsageStore) -> None:
    log, written = await _write(store, 3)
    rows = await store.fetch_audit("", -1, 100)
    assert [r["chain"] for r in rows] == [log.chain] * 4
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert orjson.loads(rows[0]["detail"]) == {"overlap_s": 1.5, "ids": [0, "x"]} and rows[3]["detail"] is None
    assert rows[0]["hash"] == written[0]["hash"] and rows[3]["prev"] == written[2]["hash"]
    _, _ = await _write(store, 2)  # a second process: its own chain
    result = await verify_store(store)
    assert result.ok and result.lines == 7


async def test_an_edited_or_deleted_row_is_detected(store: UsageStore) -> None:
    log, _ = await _write(store, 4)
    await _execute(store, "UPDATE ai_audit SET outcome = 'denied' WHERE seq = $1 AND chain = $2", 2, log.chain)
    edited = await verify_store(store)
    assert not edited.ok and edited.problem == f"chain {log.chain} seq 2: content does not match its hash (edited)"
    await _execute(store, "UPDATE ai_audit SET outcome = 'ok' WHERE seq = $1 AND chain = $2", 2, log.chain)
    assert (await verify_store(store)).ok
    await _execute(store, "DELETE FROM ai_audit WHERE seq = $1 AND chain = $2", 3, log.chain)
    deleted = await verify_store(store)
    assert not deleted.ok and deleted.problem is not None and "seq 4: chain broken" in deleted.problem


def _aimm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [".venv/bin/aimm", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_gateway_writes_its_audit_trail_to_the_store_and_the_cli_verifies_it(tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    config = base_config(
        [{"name": "m", "provider": "mock"}],
        store={"sqlite_path": str(db), "flush_interval_s": 0.05},
        hardening={"audit": {"sink": "off", "store": True}},
    )
    gateway = Gateway(parse_config(config))
    with run_asgi_app(create_app(gateway)) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.post("/v1/chat/completions", json={}, headers={"authorization": "Bearer wrong"}).status_code == 401
        created = c.post("/admin/keys", json={"name": "ci"}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert created.status_code == 201
    # The server has stopped: its shutdown flushed the queued records before the store closed.
    with sqlite3.connect(db) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM ai_audit ORDER BY seq")]
    assert actions == ["auth.failure", "key.create"]
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"store": {"sqlite_path": str(db)}}))
    ok = _aimm("audit", "verify", "--config", str(path))
    assert ok.returncode == 0 and "2 records" in ok.stdout, ok.stderr
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE ai_audit SET who = 'someone-else' WHERE action = 'key.create'")
    bad = _aimm("audit", "verify", "--config", str(path))
    assert bad.returncode == 1 and "seq 2: content does not match its hash" in bad.stderr
    both = _aimm("audit", "verify", "x.jsonl", "--config", str(path))
    assert both.returncode == 2


async def test_a_full_queue_drops_and_counts_instead_of_waiting(tmp_path: Path) -> None:
    store = SqliteStore(fresh_sqlite_path(tmp_path))  # never opened: every write would fail
    dropped = _dropped()
    sink = AuditStoreSink(store, "c", StoreSettings(queue_max=2), dropped)
    log = AuditLog(None)
    log.add_sink(sink)
    for i in range(5):
        log.record("limit.hit", target=str(i))
    assert sink.writer.queued == 2 and dropped.labels().value == 3
    await store.close()
