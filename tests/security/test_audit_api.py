"""GET /admin/audit over real HTTP: from the usage store (SQLite, PostgreSQL) or the audit file;
newest first, filters, cursor paging, 400s on bad parameters, admins only, each record's hash
chain checked (an edited or deleted record shows up as not verified)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aimm_gateway.store.postgres import PostgresStore
from tests.backing import PostgresServer
from tests.cost.stores import fresh_postgres_dsn
from tests.gateway.conftest import ADMIN_TOKEN, RunningGateway, base_config

Start = Callable[[dict[str, Any]], RunningGateway]
ROLES = ("viewer", "developer", "user")
ROLE_KEYS = {role: f"sk-audit-{role}-0123456789" for role in ROLES}
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(autouse=True)
def _role_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for role, key in ROLE_KEYS.items():
        monkeypatch.setenv(f"AIMM_AUDIT_{role.upper()}", key)


def _config(tmp_path: Path, audit: dict[str, Any], store: dict[str, Any] | None = None) -> dict[str, Any]:
    config = base_config([{"name": "m", "provider": "mock"}], hardening={"audit": audit}, console={"enabled": True})
    config["auth"]["api_keys"] += [
        {"name": f"{role}-key", "key": {"env": f"AIMM_AUDIT_{role.upper()}"}, "role": role} for role in ROLES
    ]
    config["auth"]["key_store"] = {"path": str(tmp_path / "keys.json")}
    if store is not None:
        config["store"] = {**store, "flush_interval_s": 0.05}
    return config


def _events(c: httpx.Client) -> None:
    """Three auth failures, two keys created by the admin, one access denied: six records."""
    for _ in range(3):
        assert c.get("/v1/models", headers={"authorization": "Bearer sk-wrong-key"}).status_code == 401
    for name in ("ci", "batch"):
        assert c.post("/admin/keys", json={"name": name}, headers=ADMIN).status_code == 201
    assert c.get("/admin/keys", headers={"authorization": f"Bearer {ROLE_KEYS['viewer']}"}).status_code == 403


def _list(c: httpx.Client, **params: Any) -> dict[str, Any]:
    resp = c.get("/admin/audit", params=params, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


def _exercise(c: httpx.Client, source: str) -> list[dict[str, Any]]:
    """What every source must do: newest first, verified, filters, paging, 400s, admins only."""
    _events(c)
    everything = _list(c, limit=200)
    records = everything["data"]
    assert everything["source"] == source and everything["verified"] is True and everything["has_more"] is False
    assert [r["action"] for r in records] == ["access.denied", "key.create", "key.create", *["auth.failure"] * 3]
    assert all(r["verified"] for r in records)
    assert [r["ts"] for r in records] == sorted((r["ts"] for r in records), reverse=True)
    assert records[1]["target"].endswith("(batch)") and records[1]["who"] == "admin-token"

    failures = _list(c, action="auth.failure")["data"]
    assert len(failures) == 3 and {r["outcome"] for r in failures} == {"denied"}
    assert [r["action"] for r in _list(c, actor="viewer-key")["data"]] == ["access.denied"]
    assert _list(c, outcome="ok", action="key.create")["data"] == records[1:3]
    assert _list(c, since=records[2]["ts"])["data"] == records[:3]
    assert _list(c, until=records[2]["ts"])["data"] == records[3:]

    pages, cursor = [], None
    while True:
        page = _list(c, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append(page["data"])
        assert page["verified"] is True and page["has_more"] == (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2] and [r for p in pages for r in p] == records

    for params, param in (
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ({"who": "admin"}, "who"),
    ):
        bad = c.get("/admin/audit", params=params, headers=ADMIN)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["error"]["type"] == "invalid_request_error" and bad.json()["error"]["param"] == param
    for role, key in ROLE_KEYS.items():
        denied = c.get("/admin/audit", headers={"authorization": f"Bearer {key}"})
        assert denied.status_code == 403, role
    assert c.get("/admin/audit").status_code == 401
    return records


def test_store_source_sqlite_lists_filters_pages_and_flags_tampering(start_gateway: Start, tmp_path: Path) -> None:
    db = tmp_path / "usage.db"
    gw = start_gateway(_config(tmp_path, {"sink": "off", "store": True}, {"sqlite_path": str(db)}))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        records = _exercise(c, "store")
        chain = records[0]["chain"]
        assert chain and {r["chain"] for r in records} == {chain}
        with sqlite3.connect(db) as conn:  # an edit, then a deletion, straight in the table
            conn.execute("UPDATE ai_audit SET target = 'key nobody' WHERE hash = ?", (records[1]["hash"],))
            conn.execute("DELETE FROM ai_audit WHERE hash = ?", (records[4]["hash"],))
        doc = _list(c, limit=200)
        assert doc["verified"] is False
        status = {(r["action"], r["seq"]): (r["verified"], r.get("problem", "")) for r in doc["data"]}
        edited = status[("key.create", records[1]["seq"])]
        assert edited[0] is False and "content does not match its hash" in edited[1]
        after_gap = status[("auth.failure", records[3]["seq"])]  # its predecessor was deleted
        assert after_gap[0] is False and "chain broken" in after_gap[1]
        assert status[("auth.failure", records[5]["seq"])] == (True, "")  # the chain's first record
        assert status[("access.denied", records[0]["seq"])] == (True, "")
        one = _list(c, action="key.create", limit=1)  # a filtered page still checks links outside it
        assert one["data"][0]["verified"] is False and one["verified"] is False


async def test_store_source_postgres(
    start_gateway: Start, tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = await fresh_postgres_dsn(postgres_server)
    migrator = PostgresStore(dsn, check_schema=False)
    await migrator.open()
    await migrator.upgrade()
    await migrator.close()
    monkeypatch.setenv("AIMM_AUDIT_DSN", dsn)
    store = {"postgres": {"dsn": {"env": "AIMM_AUDIT_DSN"}}}
    gw = start_gateway(_config(tmp_path, {"sink": "off", "store": True}, store))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        records = _exercise(c, "store")
        tampered = PostgresStore(dsn)
        await tampered.open()
        try:
            await tampered.pool.execute("UPDATE ai_audit SET who = 'someone' WHERE hash = $1", records[2]["hash"])
        finally:
            await tampered.close()
        doc = _list(c, limit=200)
        assert doc["verified"] is False
        unverified = [r["hash"] for r in doc["data"] if not r["verified"]]
        assert unverified == [records[2]["hash"]] and len(doc["data"]) > len(records)


def test_file_source(start_gateway: Start, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    gw = start_gateway(_config(tmp_path, {"sink": "file", "path": str(path)}))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        records = _exercise(c, "file")
        lines = path.read_text().splitlines()
        edited = orjson.loads(lines[1])
        edited["outcome"] = "ok"
        lines[1] = orjson.dumps(edited).decode()
        path.write_text("\n".join(lines) + "\n")
        doc = _list(c, limit=200)
        assert doc["verified"] is False
        bad = [r for r in doc["data"] if not r["verified"]]
        assert [(r["seq"], r["outcome"]) for r in bad] == [(records[4]["seq"], "ok")]


def test_no_readable_trail_is_a_404_and_the_console_hides_its_page(start_gateway: Start, tmp_path: Path) -> None:
    gw = start_gateway(_config(tmp_path, {"sink": "stdout"}))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        missing = c.get("/admin/audit", headers=ADMIN)
        assert missing.status_code == 404 and "hardening.audit.store" in missing.json()["error"]["message"]
        assert c.get("/console/session", headers=ADMIN).json()["features"]["audit"] is False


def test_the_console_session_offers_the_audit_page_with_a_source(start_gateway: Start, tmp_path: Path) -> None:
    gw = start_gateway(_config(tmp_path, {"sink": "file", "path": str(tmp_path / "a.jsonl")}))
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        assert c.get("/console/session", headers=ADMIN).json()["features"]["audit"] is True
