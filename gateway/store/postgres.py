"""The production usage store: PostgreSQL through an asyncpg pool.

The schema is applied by `aimm db upgrade` (a deploy step, run once, not by every replica);
at start a replica only checks the version and refuses a schema that is behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from aimm_gateway.store import sql
from aimm_gateway.store.audit_rows import AuditFilter
from aimm_gateway.store.base import StoreError
from aimm_gateway.store.migrations import LATEST, VERSION_TABLE, pending
from aimm_gateway.store.rows import UsageRow

_LOCK_ID = 0x41494D4D  # "AIMM": one migrator at a time (advisory lock)


class PostgresStore:
    dialect = "postgres"

    def __init__(self, dsn: str, pool_size: int = 4, check_schema: bool = True) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._check = check_schema
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("postgres store is not open")
        return self._pool

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"postgres: cannot connect: {type(exc).__name__}") from None  # the DSN holds a password
        await self.pool.execute(VERSION_TABLE)
        version = await self.schema_version()
        if self._check and version < LATEST:
            raise StoreError(
                f"postgres schema is at version {version}, this gateway needs {LATEST}: run `aimm db upgrade`"
            )

    async def schema_version(self) -> int:
        return int(await self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM ai_schema_version"))

    async def upgrade(self) -> list[int]:
        done = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
            current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM ai_schema_version"))
            for migration in pending(current):
                for statement in migration.render("postgres"):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO ai_schema_version (version) VALUES ($1)", migration.version)
                done.append(migration.version)
        return done

    async def insert(self, rows: Sequence[UsageRow]) -> None:
        attempts = [a.values() for r in rows for a in r.attempt_rows]
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(sql.insert_requests(sql.dollar), [r.values() for r in rows])
            if attempts:
                await conn.executemany(sql.insert_attempts(sql.dollar), attempts)

    async def oldest_ms(self) -> int | None:
        value = await self.pool.fetchval("SELECT MIN(ts_ms) FROM ai_requests")
        return None if value is None else int(value)

    async def spend_units(self, since_ms: int, until_ms: int, scope: sql.Scope) -> int:
        query, args = sql.spend(sql.dollar, since_ms, until_ms, scope)
        return int(await self.pool.fetchval(query, *args))

    async def fetch(self, since_ms: int, until_ms: int) -> list[dict[str, Any]]:
        query, args = sql.fetch(sql.dollar, since_ms, until_ms)
        return [dict(r) for r in await self.pool.fetch(query, *args)]

    async def fetch_rollups(self, since_day: str, until_day: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(sql.fetch_rollups(sql.dollar), since_day, until_day)]

    async def rollup_day(self, day: str, since_ms: int, until_ms: int) -> None:
        delete, insert = sql.rollup(sql.dollar)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(delete, day)
            await conn.execute(insert, day, since_ms, until_ms)

    async def prune(self, raw_before_ms: int, rollup_before_day: str) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM ai_requests WHERE ts_ms < $1", raw_before_ms)
            await conn.execute("DELETE FROM ai_request_attempts WHERE ts_ms < $1", raw_before_ms)
            await conn.execute("DELETE FROM ai_usage_daily WHERE day < $1", rollup_before_day)
        return int(status.split()[-1])

    async def insert_audit(self, rows: Sequence[tuple[object, ...]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(sql.insert_audit(sql.dollar), rows)

    async def fetch_audit(self, after_chain: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        query, args = sql.fetch_audit(sql.dollar, after_chain, after_seq, limit)
        return [dict(r) for r in await self.pool.fetch(query, *args)]

    async def list_audit(self, query: AuditFilter, limit: int) -> list[dict[str, Any]]:
        statement, args = sql.list_audit(sql.dollar, query, limit)
        return [dict(r) for r in await self.pool.fetch(statement, *args)]

    async def audit_at(self, positions: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        statement, args = sql.audit_at(sql.dollar, positions)
        return [dict(r) for r in await self.pool.fetch(statement, *args)]

    async def audit_chain_starts(self, chains: Sequence[str]) -> dict[str, int]:
        statement, args = sql.audit_chain_starts(sql.dollar, chains)
        return {str(r[0]): int(r[1]) for r in await self.pool.fetch(statement, *args)}

    async def get_meta(self, name: str) -> str | None:
        value = await self.pool.fetchval("SELECT value FROM ai_store_meta WHERE name = $1", name)
        return None if value is None else str(value)

    async def set_meta(self, name: str, value: str) -> None:
        await self.pool.execute(
            "INSERT INTO ai_store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            name,
            value,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
