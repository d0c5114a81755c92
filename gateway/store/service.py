"""The usage store as a process service: open (and migrate SQLite), batched writer, maintenance loop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from aimm_gateway.budget.metrics import CostMetrics
from aimm_gateway.config import StoreSettings
from aimm_gateway.store.base import StoreError, UsageStore
from aimm_gateway.store.factory import build_store
from aimm_gateway.store.maintenance import run_maintenance
from aimm_gateway.store.rows import UsageRow
from aimm_gateway.store.writer import UsageWriter

log = logging.getLogger("aimm.store")


class UsageService:
    """`record()` is the only call on the request path (no I/O); the rest is lifecycle."""

    def __init__(self, settings: StoreSettings, metrics: CostMetrics) -> None:
        self.settings = settings
        self.store: UsageStore = build_store(settings)
        self._metrics = metrics
        self.writer = UsageWriter(
            self.store,
            settings.batch_size,
            settings.flush_interval_s,
            settings.queue_max,
            on_drop=metrics.usage_dropped.inc,
            on_write_error=metrics.usage_write_errors.inc,
        )
        self.ready = False
        self._maintenance: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.store.open()
        except StoreError as exc:
            # Serving matters more than history: requests go on, rows queue (bounded) and are counted.
            log.error("usage store unavailable: %s", exc)
            return
        self.ready = True
        self.writer.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="aimm-usage-maintenance")

    def record(self, row: UsageRow) -> None:
        self.writer.record(row)

    async def _maintain(self) -> None:
        while True:
            try:
                deleted = await run_maintenance(
                    self.store, datetime.now(UTC), self.settings.retention_days, self.settings.rollup_retention_days
                )
                if deleted:
                    log.info("usage retention: deleted %d raw rows (rolled up first)", deleted)
            except Exception:
                log.exception("usage maintenance failed; retrying next interval")
            await asyncio.sleep(self.settings.maintenance_interval_s)

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        if self.ready:
            await self.writer.close()
        elif self.writer.queued:
            log.error("usage store unavailable at shutdown: %d rows not written", self.writer.queued)
        await self.store.close()
