"""The audit trail: one JSON line per security-relevant event, hash-chained.

Each line carries `prev` (the previous line's hash) and `hash` = SHA-256 over `prev` and the
line's canonical JSON without `hash`. Editing a line breaks its hash; deleting or reordering
lines breaks the next line's `prev`. `verify_lines` (and `aimm audit verify FILE`) checks both.
A file sink resumes the chain from the file's last line, so restarts don't break it; each
process writes its own file (two writers on one file would interleave two chains). Further
sinks (the usage store: `audit_store.py`) get every record; `chain` names this process's chain
there.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from aimm_gateway.security.identity import Identity

GENESIS = "0" * 64

Sink = Callable[[dict[str, Any]], None]


def line_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    blob = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(record.get("prev", "").encode() + b"\n" + blob).hexdigest()


class AuditLog:
    def __init__(
        self, out: TextIO | None, extra_sinks: Iterable[Sink] = (), clock: Callable[[], float] = time.time
    ) -> None:
        self._out = out
        self._sinks = list(extra_sinks)
        self._clock = clock
        self._prev = GENESIS
        self._seq = 0
        self.path: Path | None = None  # the file sink's file (read back by GET /admin/audit)
        self.chain = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"

    @classmethod
    def to_file(cls, path: Path, clock: Callable[[], float] = time.time) -> AuditLog:
        log = cls(None, clock=clock)
        if path.exists():
            last = _last_line(path)
            if last:
                record = orjson.loads(last)
                log._prev, log._seq = record["hash"], record["seq"]
        log._out = path.open("a", encoding="utf-8")
        log.path = path
        return log

    @classmethod
    def to_stdout(cls) -> AuditLog:
        return cls(sys.stdout)

    def add_sink(self, sink: Sink) -> None:
        """E.g. the usage store (audit_store.AuditStoreSink)."""
        self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        self._sinks.remove(sink)

    def record(
        self,
        action: str,
        *,
        actor: Identity | None = None,
        target: str | None = None,
        outcome: str = "ok",
        request_id: str | None = None,
        **detail: Any,
    ) -> dict[str, Any]:
        self._seq += 1
        entry: dict[str, Any] = {
            "seq": self._seq,
            "ts": round(self._clock(), 6),
            "who": actor.name if actor is not None else None,
            "role": actor.role.value if actor is not None else None,
            "action": action,
            "target": target,
            "outcome": outcome,
            "request_id": request_id,
        }
        if detail:
            entry["detail"] = detail
        entry["prev"] = self._prev
        entry["hash"] = self._prev = line_hash(entry)
        if self._out is not None:
            self._out.write(orjson.dumps(entry).decode() + "\n")
            self._out.flush()
        for sink in self._sinks:
            sink(entry)
        return entry

    def close(self) -> None:
        if self._out is not None and self._out is not sys.stdout:
            self._out.close()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    lines: int
    problem: str | None = None


def verify_lines(lines: Iterable[str]) -> VerifyResult:
    """Check the chain line by line; the first break is named by its line number."""
    return verify_chain(parsed_lines(lines))


def parsed_lines(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """("line N", the record) per non-blank line; a line that is not JSON gives `NOT_JSON`."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                yield f"line {number}", orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield f"line {number}", NOT_JSON


NOT_JSON: Any = object()


class ChainCheck:
    """One chain, record by record: `feed` returns the problem with this record, or None.

    `prev`: the hash of the record before the first one fed (None: the first starts the chain).
    """

    def __init__(self, prev: str | None = None) -> None:
        self._prev = prev

    def feed(self, where: str, record: Any) -> str | None:
        if record is NOT_JSON:
            return f"{where}: not JSON"
        if not isinstance(record, dict) or "hash" not in record or "prev" not in record:
            return f"{where}: not an audit record"
        if self._prev is not None and record["prev"] != self._prev:
            return f"{where}: chain broken (a record before it was removed or moved)"
        if line_hash(record) != record["hash"]:
            return f"{where}: content does not match its hash (edited)"
        self._prev = record["hash"]
        return None


def verify_chain(records: Iterable[tuple[str, Any]]) -> VerifyResult:
    """Check one chain of (where, record) pairs in order; `where` names the first break."""
    check, count = ChainCheck(), 0
    for where, record in records:
        count += 1
        problem = check.feed(where, record)
        if problem is not None:
            return VerifyResult(False, count, problem)
    return VerifyResult(True, count)


def verify_file(path: Path) -> VerifyResult:
    with path.open(encoding="utf-8") as fh:
        return verify_lines(fh)


def _last_line(path: Path) -> str | None:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        tail = fh.read().splitlines()
    return tail[-1].decode() if tail else None
