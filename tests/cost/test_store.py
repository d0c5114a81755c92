"""The usage store: the same suite against SQLite (a temp file) and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aimm_gateway.store.base import StoreError, UsageStore
from aimm_gateway.store.maintenance import day_bounds_ms, run_maintenance
from aimm_gateway.store.migrations import LATEST
from aimm_gateway.store.postgres import PostgresStore
from aimm_gateway.store.rows import AttemptRow, UsageRow
from aimm_gateway.store.sql import Scope
from aimm_gateway.store.sqlite import SqliteStore
from aimm_gateway.store.writer import UsageWriter
from tests.cost.stores import fresh_postgres_dsn, open_fresh_store

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def row(i: int, ts: datetime = NOW, **extra: object) -> UsageRow:
    fields: dict[str, object] = {
        "ts_ms": ms(ts),
        "request_id": f"req-{i}",
        "key_name": "team-a",
        "team": "alpha",
        "route": "smart",
        "requested": "smart",
        "model": "gpt-small",
        "provider": "openai",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_units": 1_000_000 + i,  # 0.0001 USD + i units
        "baseline_units": 3_000_000,
        "latency_ms": 12.5,
        "ttft_ms": 3.0,
        "attempts": 1,
        "route_reason": "weighted",
        "attempt_rows": (AttemptRow(ms(ts), f"req-{i}", 0, "gpt-small", "openai", "ok", 200, 12.0),),
    }
    fields.update(extra)
    return UsageRow(**fields)  # type: ignore[arg-type]


async def _upgrade_once(migrator: PostgresStore) -> None:
    assert await migrator.upgrade() == list(range(1, LATEST + 1))
    assert await migrator.upgrade() == []  # idempotent


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageStore]:
    backend = await open_fresh_store(request.param, request, tmp_path, _upgrade_once)
    yield backend
    await backend.close()


async def test_schema_is_current(store: UsageStore) -> None:
    assert await store.schema_version() == LATEST


async def test_insert_and_spend_by_scope(store: UsageStore) -> None:
    await store.insert([row(1), row(2, model="gpt-big"), row(3, key_name="team-b", team="beta")])
    day = day_bounds_ms(NOW.date())
    assert await store.spend_units(*day, Scope()) == 3_000_006
    assert await store.spend_units(*day, Scope(models=["gpt-big"])) == 1_000_002
    assert await store.spend_units(*day, Scope(key_names=["team-a"], models=["gpt-small"])) == 1_000_001
    assert await store.spend_units(*day, Scope(teams=["beta"])) == 1_000_003
    assert await store.spend_units(*day, Scope(routes=["other"])) == 0
    assert await store.spend_units(day[1], day[1] + 1000, Scope()) == 0
    rows = await store.fetch(*day)
    assert [r["cost_units"] for r in rows] == [1_000_001, 1_000_002, 1_000_003]
    assert rows[0]["latency_ms"] == 12.5 and rows[0]["cache_hit"] == 0


async def test_rollup_then_prune(store: UsageStore) -> None:
    old = NOW - timedelta(days=40)
    await store.insert([row(1, old), row(2, old, status=502, error_kind="timeout", model=None), row(3)])
    deleted = await run_maintenance(store, NOW, retention_days=30, rollup_retention_days=400)
    assert deleted == 2
    assert len(await store.fetch(0, ms(NOW) + 1)) == 1  # only today's raw row is left
    rollups = await store.fetch_rollups(old.date().isoformat(), (NOW.date() + timedelta(days=1)).isoformat())
    by_day: dict[str, list[dict[str, object]]] = {}
    for r in rollups:
        by_day.setdefault(str(r["day"]), []).append(r)
    old_day = by_day[old.date().isoformat()]
    assert sum(int(r["requests"]) for r in old_day) == 2  # type: ignore[call-overload]
    assert sum(int(r["errors"]) for r in old_day) == 1  # type: ignore[call-overload]
    assert sum(int(r["cost_units"]) for r in old_day) == 2_000_003  # type: ignore[call-overload]
    assert by_day[NOW.date().isoformat()][0]["requests"] == 1
    # Running again is idempotent: today's partial rollup is recomputed, not added twice.
    await store.insert([row(4)])
    await run_maintenance(store, NOW, retention_days=30, rollup_retention_days=400)
    today = await store.fetch_rollups(NOW.date().isoformat(), (NOW.date() + timedelta(days=1)).isoformat())
    assert sum(int(r["requests"]) for r in today) == 2


async def test_writer_batches_and_flushes_on_close(store: UsageStore) -> None:
    writer = UsageWriter(store, batch_size=50, flush_interval_s=30, queue_max=1000)
    writer.start()
    for i in range(120):
        writer.record(row(i))
    await asyncio.sleep(0.3)  # a full batch woke the writer long before its 30 s interval
    assert writer.written == 120 and writer.queued == 0
    for i in range(120, 130):
        writer.record(row(i))
    await asyncio.sleep(0.2)
    assert writer.queued == 10  # under a batch: waits for the interval (or close)
    await writer.close()  # clean shutdown writes the rest
    assert writer.written == 130
    assert len(await store.fetch(0, ms(NOW) + 1)) == 130


async def test_writer_drops_and_counts_when_full(store: UsageStore) -> None:
    dropped: list[int] = []
    writer = UsageWriter(store, batch_size=1000, flush_interval_s=30, queue_max=10, on_drop=dropped.append)
    for i in range(15):
        writer.record(row(i))
    assert writer.queued == 10 and writer.dropped == 5 and sum(dropped) == 5
    await writer.close()
    assert len(await store.fetch(0, ms(NOW) + 1)) == 10


async def test_postgres_refuses_a_schema_behind(postgres_server: object) -> None:
    dsn = await fresh_postgres_dsn(postgres_server)  # type: ignore[arg-type]
    behind = PostgresStore(dsn)
    with pytest.raises(StoreError, match="aimm db upgrade"):
        await behind.open()
    await behind.close()


async def test_sqlite_migrates_itself_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "usage.db"
    first = SqliteStore(path)
    await first.open()
    await first.insert([row(1)])
    await first.close()
    again = SqliteStore(path)  # reopened: same data, no second migration
    await again.open()
    assert await again.schema_version() == LATEST
    assert len(await again.fetch(0, ms(NOW) + 1)) == 1
    await again.close()
    import sqlite3

    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
