"""The embedded usage store: one SQLite file in WAL mode, used from one worker thread.

sqlite3 blocks, so every call runs on a single-thread executor: the event loop never waits on
disk, and the one connection is never used from two threads at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aimm_gateway.store import sql
from aimm_gateway.store.audit_rows import AUDIT_COLUMNS, AuditFilter
from aimm_gateway.store.base import StoreError
from aimm_gateway.store.migrations import LATEST, VERSION_TABLE, pending
from aimm_gateway.store.rows import UsageRow

T = TypeVar("T")


class SqliteStore:
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aimm-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise StoreError(f"sqlite store {self.path} is not open")
            return fn(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(VERSION_TABLE)
        self._conn = conn

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)
        if await self.schema_version() < LATEST:
            await self.upgrade()  # embedded: migrate automatically at start

    async def schema_version(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT MAX(version) FROM ai_schema_version").fetchone()
            return int(row[0] or 0)

        return await self._run(read)

    async def upgrade(self) -> list[int]:
        def apply(conn: sqlite3.Connection) -> list[int]:
            current = int(conn.execute("SELECT MAX(version) FROM ai_schema_version").fetchone()[0] or 0)
            done = []
            for migration in pending(current):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in migration.render("sqlite"):
                        conn.execute(statement)
                    conn.execute("INSERT INTO ai_schema_version (version) VALUES (?)", (migration.version,))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                done.append(migration.version)
            return done

        return await self._run(apply)

    async def insert(self, rows: Sequence[UsageRow]) -> None:
        requests = [r.values() for r in rows]
        attempts = [a.values() for r in rows for a in r.attempt_rows]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            try:
                conn.executemany(sql.insert_requests(sql.qmark), requests)
                if attempts:
                    conn.executemany(sql.insert_attempts(sql.qmark), attempts)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def oldest_ms(self) -> int | None:
        def read(conn: sqlite3.Connection) -> int | None:
            value = conn.execute("SELECT MIN(ts_ms) FROM ai_requests").fetchone()[0]
            return None if value is None else int(value)

        return await self._run(read)

    async def spend_units(self, since_ms: int, until_ms: int, scope: sql.Scope) -> int:
        query, args = sql.spend(sql.qmark, since_ms, until_ms, scope)
        return await self._run(lambda conn: int(conn.execute(query, args).fetchone()[0]))

    async def fetch(self, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        query, args = sql.fetch(sql.qmark, since_ms, until_ms)
        cols = sql.ANALYTICS_COLUMNS
        return await self._run(lambda conn: [dict(zip(cols, r, strict=True)) for r in conn.execute(query, args)])

    async def fetch_rollups(self, since_day: str, until_day: str) -> list[dict[str, Any]]:
        query, cols = sql.fetch_rollups(sql.qmark), sql.ROLLUP_COLUMNS
        return await self._run(
            lambda conn: [dict(zip(cols, r, strict=True)) for r in conn.execute(query, (since_day, until_day))]
        )

    async def rollup_day(self, day: str, since_ms: int, until_ms: int) -> None:
        delete, insert = sql.rollup(sql.qmark)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            conn.execute(delete, (day,))
            conn.execute(insert, (day, since_ms, until_ms))
            conn.execute("COMMIT")

        await self._run(run)

    async def prune(self, raw_before_ms: int, rollup_before_day: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN")
            deleted = conn.execute("DELETE FROM ai_requests WHERE ts_ms < ?", (raw_before_ms,)).rowcount
            conn.execute("DELETE FROM ai_request_attempts WHERE ts_ms < ?", (raw_before_ms,))
            conn.execute("DELETE FROM ai_usage_daily WHERE day < ?", (rollup_before_day,))
            conn.execute("COMMIT")
            return int(deleted)

        return await self._run(run)

    async def insert_audit(self, rows: Sequence[tuple[object, ...]]) -> None:
        statement = sql.insert_audit(sql.qmark)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            try:
                conn.executemany(statement, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def fetch_audit(self, after_chain: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        return await self._audit_rows(*sql.fetch_audit(sql.qmark, after_chain, after_seq, limit))

    async def list_audit(self, query: AuditFilter, limit: int) -> list[dict[str, Any]]:
        return await self._audit_rows(*sql.list_audit(sql.qmark, query, limit))

    async def audit_at(self, positions: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        return await self._audit_rows(*sql.audit_at(sql.qmark, positions))

    async def _audit_rows(self, query: str, args: list[object]) -> list[dict[str, Any]]:
        cols = AUDIT_COLUMNS
        return await self._run(lambda conn: [dict(zip(cols, r, strict=True)) for r in conn.execute(query, args)])

    async def audit_chain_starts(self, chains: Sequence[str]) -> dict[str, int]:
        query, args = sql.audit_chain_starts(sql.qmark, chains)
        return await self._run(lambda conn: {str(c): int(s) for c, s in conn.execute(query, args)})

    async def get_meta(self, name: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM ai_store_meta WHERE name = ?", (name,)).fetchone()
            return str(row[0]) if row else None

        return await self._run(read)

    async def set_meta(self, name: str, value: str) -> None:
        statement = "INSERT INTO ai_store_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?"
        await self._run(lambda conn: conn.execute(statement, (name, value, value)))

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
