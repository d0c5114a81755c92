"""Helpers: a fresh, empty usage store of either backend (a new SQLite file, a new PostgreSQL database)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from aimm_gateway.store.base import UsageStore
from aimm_gateway.store.postgres import PostgresStore
from aimm_gateway.store.sqlite import SqliteStore
from tests.backing import PostgresServer


async def fresh_postgres_dsn(server: PostgresServer) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.dsn.rsplit("/", 1)[0] + "/" + name


def fresh_sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / f"usage-{uuid.uuid4().hex[:8]}.db"


async def _upgrade(migrator: PostgresStore) -> None:
    await migrator.upgrade()


async def open_fresh_store(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    migrate: Callable[[PostgresStore], Awaitable[None]] = _upgrade,
) -> UsageStore:
    """A fresh usage store of `backend` ("sqlite" or "postgres"), opened; a PostgreSQL one is
    migrated first by `migrate` (which may check what the migrations did)."""
    if backend == "sqlite":
        store: UsageStore = SqliteStore(fresh_sqlite_path(tmp_path))
    else:
        dsn = await fresh_postgres_dsn(request.getfixturevalue("postgres_server"))
        migrator = PostgresStore(dsn, check_schema=False)
        await migrator.open()
        try:
            await migrate(migrator)
        finally:
            await migrator.close()
        store = PostgresStore(dsn)
    await store.open()
    return store


def wait_for_rows(db: Path, columns: str, expected: int, timeout_s: float = 10.0) -> list[sqlite3.Row]:
    """`ai_requests` rows of a running gateway's SQLite store, oldest first, once at least
    `expected` are written (the writer flushes off the request path) or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(f"SELECT {columns} FROM ai_requests ORDER BY ts_ms").fetchall()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
