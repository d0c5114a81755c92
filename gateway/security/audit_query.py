"""Reading the audit trail back: newest first, filtered, page by page, each record checked.

Two sources: the usage store's `ai_audit` table (`hardening.audit.store: true`) and the file
sink (`hardening.audit.sink: file`). A record is `verified` when its content matches its hash
and its `prev` is the hash of the record before it in its chain: the same `ChainCheck` that
`aimm audit verify` runs, fed with the predecessor's hash. The first record of a chain has
nothing before it to match (as in `verify_store`). A page is verified when all its records are.
The cursor is opaque to clients: the (ts, chain, seq) of the page's last record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from aimm_gateway.security.audit import NOT_JSON, ChainCheck, parsed_lines
from aimm_gateway.store.audit_rows import AuditFilter, audit_record
from aimm_gateway.store.base import UsageStore

MAX_LIMIT = 200
_BROKEN = "(no record)"  # the hash a missing or unreadable predecessor "has": never a record's prev

Position = tuple[float, str, int]  # (ts, chain, seq): the newest-first order, and the cursor


@dataclass(frozen=True)
class AuditPage:
    records: list[dict[str, Any]]
    next_cursor: str | None

    @property
    def verified(self) -> bool:
        return all(r["verified"] for r in self.records)


class AuditSource(Protocol):
    name: str  # "store" | "file"

    async def page(self, query: AuditFilter, limit: int) -> AuditPage: ...


def encode_cursor(position: Position) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(text: str) -> Position:
    """The position a cursor names; ValueError when it is not one this module made."""
    try:
        ts, chain, seq = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError):
        raise ValueError("not a cursor from this endpoint") from None
    if not (isinstance(ts, int | float) and isinstance(chain, str) and isinstance(seq, int)):
        raise ValueError("not a cursor from this endpoint")
    return float(ts), chain, seq


def checked(where: str, record: dict[str, Any], prev_hash: str | None) -> dict[str, Any]:
    """The record with `verified` (and the `problem` when it is not)."""
    problem = ChainCheck(prev_hash).feed(where, record)
    return {**record, "verified": problem is None, **({"problem": problem} if problem else {})}


def _page(shown: list[tuple[Position, dict[str, Any]]], more: bool) -> AuditPage:
    """One page, newest first; `more`: there are older matching records (the cursor points past these)."""
    return AuditPage([r for _, r in shown], encode_cursor(shown[-1][0]) if more and shown else None)


class StoreAudit:
    """`ai_audit` in the usage store (SQLite or PostgreSQL): filtering and paging in SQL."""

    name = "store"

    def __init__(self, store: UsageStore, flush: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._flush = flush  # this process's records still queued for the store

    async def page(self, query: AuditFilter, limit: int) -> AuditPage:
        await self._flush()
        rows = await self._store.list_audit(query, limit + 1)  # the extra row: is there a next page?
        more, rows = len(rows) > limit, rows[:limit]
        shown = {(r["chain"], int(r["seq"])): r for r in rows}
        wanted = sorted({(c, s - 1) for c, s in shown if (c, s - 1) not in shown})
        found = {(r["chain"], int(r["seq"])): r for r in await self._store.audit_at(wanted)} if wanted else {}
        starts = await self._store.audit_chain_starts(sorted({c for c, _ in wanted})) if wanted else {}
        out = []
        for row in rows:
            chain, seq = row["chain"], int(row["seq"])
            before = shown.get((chain, seq - 1)) or found.get((chain, seq - 1))
            first = before is None and seq <= starts.get(chain, seq)
            prev = None if first else (before["hash"] if before is not None else _BROKEN)
            record = checked(f"chain {chain} seq {seq}", audit_record(row), prev)
            out.append(((float(row["ts"]), chain, seq), {**record, "chain": chain}))
        return _page(out, more)


class FileAudit:
    """The file sink's JSON lines: read whole (in a thread), checked line by line, filtered here."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self._path = path

    async def page(self, query: AuditFilter, limit: int) -> AuditPage:
        return await asyncio.to_thread(self._read, query, limit)

    def _read(self, query: AuditFilter, limit: int) -> AuditPage:
        if not self._path.exists():
            return AuditPage([], None)
        with self._path.open(encoding="utf-8") as fh:
            newest = heapq.nlargest(limit + 1, _matching(_checked_lines(fh), query), key=lambda item: item[0])
        return _page(newest[:limit], len(newest) > limit)


def _checked_lines(lines: Iterator[str]) -> Iterator[tuple[Position, dict[str, Any]]]:
    prev: str | None = None  # the file's first line starts its chain
    for where, record in parsed_lines(lines):
        if record is NOT_JSON or not isinstance(record, dict) or not {"seq", "ts", "hash"} <= record.keys():
            prev = _BROKEN  # an unreadable line: the next record cannot link to it
            continue
        yield (float(record["ts"]), "", int(record["seq"])), checked(where, record, prev)
        prev = record["hash"]


def _matching(
    records: Iterator[tuple[Position, dict[str, Any]]], q: AuditFilter
) -> Iterator[tuple[Position, dict[str, Any]]]:
    """The same filter `sql.list_audit` applies, for records read from a file."""
    equal = [(k, v) for k, v in (("who", q.who), ("action", q.action), ("outcome", q.outcome)) if v is not None]
    for position, r in records:
        ts = position[0]
        if (q.since is not None and ts < q.since) or (q.until is not None and ts >= q.until):
            continue
        if any(r.get(k) != v for k, v in equal):
            continue
        if q.before is not None and position >= q.before:
            continue
        yield position, r
