"""The usage-store contract both backends (SQLite, PostgreSQL) implement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from aimm_gateway.store.audit_rows import AuditFilter
from aimm_gateway.store.rows import UsageRow
from aimm_gateway.store.sql import Scope


class StoreError(Exception):
    """The store cannot be used (unreachable, or its schema is behind: run `aimm db upgrade`)."""


class UsageStore(Protocol):
    dialect: str

    async def open(self) -> None:
        """Connect; check the schema version (raises StoreError when behind)."""
        ...

    async def schema_version(self) -> int: ...

    async def upgrade(self) -> list[int]:
        """Apply pending migrations in order; returns the versions applied."""
        ...

    async def insert(self, rows: Sequence[UsageRow]) -> None:
        """One transaction for the whole batch (requests and their attempts)."""
        ...

    async def oldest_ms(self) -> int | None:
        """Time of the oldest raw request row, or None when empty."""
        ...

    async def spend_units(self, since_ms: int, until_ms: int, scope: Scope) -> int: ...

    async def fetch(self, since_ms: int, until_ms: int) -> list[dict[str, Any]]: ...

    async def fetch_rollups(self, since_day: str, until_day: str) -> list[dict[str, Any]]: ...

    async def rollup_day(self, day: str, since_ms: int, until_ms: int) -> None: ...

    async def prune(self, raw_before_ms: int, rollup_before_day: str) -> int:
        """Delete raw rows (and attempts) before the cut and old rollups; returns raw rows deleted."""
        ...

    async def insert_audit(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Audit rows (`audit_rows.audit_values`), one transaction for the batch."""
        ...

    async def fetch_audit(self, after_chain: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` audit rows after (chain, seq), ordered by chain then seq."""
        ...

    async def list_audit(self, query: AuditFilter, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` audit rows matching `query`, newest first (ts, chain, seq descending)."""
        ...

    async def audit_at(self, positions: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        """The audit rows at these (chain, seq) positions; missing ones are left out."""
        ...

    async def audit_chain_starts(self, chains: Sequence[str]) -> dict[str, int]:
        """Each named chain's first seq in the table."""
        ...

    async def get_meta(self, name: str) -> str | None: ...

    async def set_meta(self, name: str, value: str) -> None: ...

    async def close(self) -> None: ...
