"""Open the configured usage store: PostgreSQL when `store.postgres` is set, else the SQLite file."""

from __future__ import annotations

from aimm_gateway.config import StoreSettings
from aimm_gateway.store.base import StoreError, UsageStore


def build_store(settings: StoreSettings, check_schema: bool = True) -> UsageStore:
    if settings.postgres is None:
        from aimm_gateway.store.sqlite import SqliteStore

        return SqliteStore(settings.sqlite_path)
    dsn = settings.postgres.dsn.resolve()
    if dsn is None:
        raise StoreError(f"store.postgres.dsn: {settings.postgres.dsn.describe()} is not set")
    from aimm_gateway.store.postgres import PostgresStore

    return PostgresStore(dsn, settings.postgres.pool_size, check_schema=check_schema)
