"""The audit trail in the usage store (table `ai_audit`, `hardening.audit.store: true`).

Every record the process's `AuditLog` writes is also queued here and written in batches by the
same kind of writer as usage rows (`store.writer.BatchWriter`): `record()` never waits on the
database, a full queue drops and counts, shutdown flushes. Each process writes its own chain
(`AuditLog.chain`); `verify_store` (and `aimm audit verify --config FILE`) checks every chain.
"""

from __future__ import annotations

from typing import Any

from aimm_gateway.config import StoreSettings
from aimm_gateway.metrics_families import CounterFamily
from aimm_gateway.security.audit import ChainCheck, VerifyResult
from aimm_gateway.store.audit_rows import audit_record, audit_values
from aimm_gateway.store.base import UsageStore
from aimm_gateway.store.writer import BatchWriter

_PAGE = 5000


class AuditStoreSink:
    def __init__(self, store: UsageStore, chain: str, settings: StoreSettings, dropped: CounterFamily) -> None:
        self._chain = chain
        self.writer: BatchWriter[tuple[object, ...]] = BatchWriter(
            store.insert_audit,
            settings.batch_size,
            settings.flush_interval_s,
            settings.queue_max,
            on_drop=dropped.inc,
            what="audit",
        )

    def __call__(self, entry: dict[str, Any]) -> None:
        self.writer.record(audit_values(self._chain, entry))

    def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        await self.writer.close()


async def verify_store(store: UsageStore) -> VerifyResult:
    """Check every chain in `ai_audit`, page by page; the first break is named by chain and seq."""
    count, chain, seq = 0, "", -1
    check = ChainCheck()
    while True:
        rows = await store.fetch_audit(chain, seq, _PAGE)
        for row in rows:
            if row["chain"] != chain:
                check = ChainCheck()  # a new writer's chain starts here
            chain, seq = row["chain"], int(row["seq"])
            count += 1
            problem = check.feed(f"chain {chain} seq {seq}", audit_record(row))
            if problem is not None:
                return VerifyResult(False, count, problem)
        if len(rows) < _PAGE:
            return VerifyResult(True, count)
