"""Helpers: a fresh, empty usage store of either backend (a new SQLite file, a new PostgreSQL database)."""

from __future__ import annotations

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
