"""Audit records as rows of `ai_audit`: the same fields as the JSON line, plus the writer's chain.

Several processes write one table, each its own hash chain (like one file per process), so a
row carries `chain` (host/pid/random) and the chain is verified per chain, ordered by `seq`.
`detail` is stored as JSON text; `record()` rebuilds exactly the dict that was hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

AUDIT_COLUMNS = (
    "chain", "seq", "ts", "who", "role", "action", "target", "outcome", "request_id", "detail", "prev", "hash",
)  # fmt: skip
_FIELDS = AUDIT_COLUMNS[1:9]  # seq .. request_id: copied as they are


def audit_values(chain: str, entry: dict[str, Any]) -> tuple[object, ...]:
    detail = entry.get("detail")
    return (
        chain,
        *(entry[f] for f in _FIELDS),
        orjson.dumps(detail).decode() if detail is not None else None,
        entry["prev"],
        entry["hash"],
    )


def audit_record(row: dict[str, Any]) -> dict[str, Any]:
    """The audit record a row holds, as it was hashed (`detail` only when there was one)."""
    record = {f: row[f] for f in _FIELDS}
    record["seq"], record["ts"] = int(record["seq"]), float(record["ts"])
    if row["detail"] is not None:
        record["detail"] = orjson.loads(row["detail"])
    record["prev"], record["hash"] = row["prev"], row["hash"]
    return record


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit rows to list (newest first); None does not narrow. `before` is the paging cursor:
    the (ts, chain, seq) of the last row of the previous page."""

    since: float | None = None
    until: float | None = None
    who: str | None = None
    action: str | None = None
    outcome: str | None = None
    before: tuple[float, str, int] | None = None
