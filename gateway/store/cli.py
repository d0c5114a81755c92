"""`aimm db upgrade`: apply pending usage-store migrations (a deploy step for PostgreSQL)."""

from __future__ import annotations

import asyncio

from aimm_gateway.config import StoreSettings, load_config
from aimm_gateway.store.base import StoreError
from aimm_gateway.store.factory import build_store


async def _upgrade(settings: StoreSettings) -> tuple[list[int], int]:
    store = build_store(settings, check_schema=False)
    try:
        await store.open()
        applied = await store.upgrade()
        return applied, await store.schema_version()
    finally:
        await store.close()


def db_upgrade(config_path: str) -> str:
    """Upgrade the store the config names; returns a one-line summary (raises StoreError)."""
    config = load_config(config_path)
    if config.store is None:
        raise StoreError(f"{config_path}: no `store:` section, nothing to upgrade")
    applied, version = asyncio.run(_upgrade(config.store))
    done = f"applied {', '.join(map(str, applied))}" if applied else "already current"
    return f"usage store ({'postgres' if config.store.postgres else 'sqlite'}): {done}; schema version {version}"
