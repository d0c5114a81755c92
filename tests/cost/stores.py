"""Helpers: a fresh, empty usage store of either backend (a new SQLite file, a new PostgreSQL database)."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

import asyncpg

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
