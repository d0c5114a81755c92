"""No usage row is lost on a clean shutdown: SIGTERM a real `aimm gateway serve` before its flush."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.cost.procs import start_gateway_process

KEY = "sk-shutdown-test"


def test_sigterm_flushes_every_row(tmp_path: Path) -> None:
    db = tmp_path / "data" / "usage.db"
    config = {
        "auth": {"api_keys": [{"name": "k", "key": {"env": "AIMM_SHUTDOWN_KEY"}}]},
        "models": [{"name": "m", "provider": "mock", "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}}],
        # Nothing would be written for a minute: only the shutdown flush can save the rows.
        "store": {"sqlite_path": str(db), "flush_interval_s": 60, "batch_size": 10000},
    }
    gw = start_gateway_process(config, tmp_path, {"AIMM_SHUTDOWN_KEY": KEY})
    try:
        with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {KEY}"}, timeout=30) as client:
            for i in range(40):
                body = {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]}
                assert client.post("/v1/chat/completions", json=body).status_code == 200
            bad = client.post(
                "/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
            )
            assert bad.status_code == 404
        assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM ai_requests").fetchone()[0] == 0  # not flushed yet
        # uvicorn shuts down gracefully, then re-raises SIGTERM on itself (exit status -15).
        assert gw.terminate() in (0, -15)
    finally:
        gw.kill()
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT status, model, cost_units, key_name FROM ai_requests").fetchall()
    assert len(rows) == 41
    assert sum(1 for r in rows if r[0] == 200 and r[1] == "m" and r[2] > 0 and r[3] == "k") == 40
    assert conn.execute("SELECT COUNT(*) FROM ai_request_attempts").fetchone()[0] == 40
