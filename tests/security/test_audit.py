"""Audit trail: hash chain over JSON lines; edits, deletions and reordering are detected."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson

from aimm_gateway.security.audit import AuditLog, verify_file
from aimm_gateway.security.identity import Identity, Role

ADMIN = Identity(name="root-ops", role=Role.ADMIN)


def _write(path: Path, n: int) -> None:
    log = AuditLog.to_file(path)
    for i in range(n):
        log.record("key.create", actor=ADMIN, target=f"key-{i}", request_id=f"r{i}", key_id=f"{i:012x}")
    log.close()


def _aimm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([".venv/bin/aimm", *args], capture_output=True, text=True, timeout=60)


def test_chain_verifies_and_resumes_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, 3)
    _write(path, 2)  # a restarted process continues the same chain
    lines = path.read_text().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["who"] == "root-ops" and records[0]["role"] == "admin" and records[0]["action"] == "key.create"
    assert records[4]["prev"] == records[3]["hash"]
    assert verify_file(path).ok
    result = _aimm("audit", "verify", str(path))
    assert result.returncode == 0 and "5 records" in result.stdout


def test_edit_delete_and_reorder_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, 4)
    lines = path.read_text().splitlines()

    edited = list(lines)
    edited[1] = edited[1].replace('"outcome":"ok"', '"outcome":"denied"')
    assert edited[1] != lines[1]
    deleted = lines[:1] + lines[2:]
    swapped = [lines[0], lines[2], lines[1], lines[3]]
    for variant, expected in ((edited, "line 2: content"), (deleted, "line 2: chain"), (swapped, "line 2: chain")):
        path.write_text("\n".join(variant) + "\n")
        result = verify_file(path)
        assert not result.ok and result.problem is not None and result.problem.startswith(expected)
    cli = _aimm("audit", "verify", str(path))
    assert cli.returncode == 1 and "TAMPERED" in cli.stderr


def test_extra_sink_gets_every_record(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []
    log = AuditLog(None, extra_sinks=[seen.append])
    log.record("auth.failure", outcome="denied", request_id="abc", client_ip="127.0.0.1")
    assert seen[0]["action"] == "auth.failure" and seen[0]["detail"] == {"client_ip": "127.0.0.1"}
