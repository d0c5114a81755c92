"""Analytics, exports, reports and budget status over real HTTP, from a real SQLite usage store."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimm_gateway.analytics.aggregate import aggregate, savings
from aimm_gateway.store.rows import UsageRow
from aimm_gateway.store.sqlite import SqliteStore
from tests.gateway.conftest import API_KEY, RunningGateway, base_config

NOW = datetime.now(UTC).replace(microsecond=0)
AIMM = str(Path(sys.executable).parent / "aimm")


def _rows() -> list[UsageRow]:
    out = []
    for i in range(20):
        big = i % 4 == 0
        out.append(
            UsageRow(
                ts_ms=int((NOW - timedelta(minutes=30 + i)).timestamp() * 1000),
                request_id=f"r{i}",
                key_name="alice" if i % 2 else "bob",
                team="alpha",
                route="smart",
                requested="smart",
                model="big" if big else "small",
                provider="openai",
                status=502 if i == 7 else 200,
                prompt_tokens=100,
                completion_tokens=50,
                cost_units=(30 if big else 3) * 1_000_000,  # $0.003 or $0.0003
                baseline_units=30 * 1_000_000,
                latency_ms=float(10 + i),
                cache_hit=i == 5,
            )
        )
    return out


async def _seed(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.insert(_rows())
    await store.close()


@pytest.fixture
def gateway(start_gateway: Any, tmp_path: Path) -> RunningGateway:
    db = tmp_path / "usage.db"
    asyncio.run(_seed(db))
    budgets = [{"name": "smart-monthly", "limit_usd": "0.05", "period": "monthly", "routes": ["smart"]}]
    config = base_config([{"name": "m", "provider": "mock"}], store={"sqlite_path": str(db)}, budgets=budgets)
    running: RunningGateway = start_gateway(config)
    return running


def test_pure_aggregation_numbers() -> None:
    rows = [
        {"ts_ms": r.ts_ms, "key_name": r.key_name, "team": r.team, "route": r.route, "model": r.model,
         "provider": r.provider, "status": r.status, "prompt_tokens": r.prompt_tokens,
         "completion_tokens": r.completion_tokens, "cost_units": r.cost_units, "baseline_units": r.baseline_units,
         "latency_ms": r.latency_ms, "cache_hit": int(r.cache_hit)}
        for r in _rows()
    ]  # fmt: skip
    by_model = {g["model"]: g for g in aggregate(rows, "model")}
    assert by_model["big"]["requests"] == 5 and by_model["big"]["cost_usd"] == "0.015000"
    assert by_model["small"]["requests"] == 15 and by_model["small"]["cost_usd"] == "0.004500"
    assert by_model["small"]["error_rate"] == round(1 / 15, 4)
    # big: latencies 10, 14, 18, 22, 26 -> nearest-rank p50 18, p95 26
    assert by_model["big"]["p50_latency_ms"] == 18.0 and by_model["big"]["p95_latency_ms"] == 26.0
    assert savings(rows) == {
        "baseline_usd": "0.060000", "actual_usd": "0.019500", "saved_usd": "0.040500",
        "saved_by_cache_usd": "0.003000", "saved_by_routing_usd": "0.037500",
    }  # fmt: skip


def test_usage_api_json_and_csv(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        doc = client.get("/api/v1/analytics/usage", params={"group_by": "key"}).json()
        assert doc["totals"]["requests"] == 20 and doc["totals"]["cache_hit_rate"] == 0.05
        keys = {g["key"]: g for g in doc["groups"]}
        assert keys["bob"]["requests"] == 10 and keys["bob"]["cost_usd"] == "0.016500"  # all 5 big rows + 5 small
        assert doc["savings"]["saved_usd"] == "0.040500"
        hours = client.get("/api/v1/analytics/usage", params={"group_by": "hour"}).json()["groups"]
        assert sum(h["requests"] for h in hours) == 20 and hours == sorted(hours, key=lambda h: h["hour"])
        exported = client.get("/api/v1/analytics/usage", params={"group_by": "model", "format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["model"] for r in table] == ["big", "small"] and table[0]["cost_usd"] == "0.015000"
        top = client.get("/api/v1/analytics/top", params={"by": "key", "limit": "1"}).json()["top"]
        assert [t["key"] for t in top] == ["bob"]


def test_usage_api_rejects_bad_parameters(gateway: RunningGateway) -> None:
    with gateway.client() as client:
        bad = client.get("/api/v1/analytics/usage", params={"group_by": "colour"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
        bad = client.get("/api/v1/analytics/usage", params={"from": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "from"
        bad = client.get("/api/v1/analytics/usage", params={"from": "2026-01-01", "to": "2026-12-01"})
        assert bad.status_code == 400 and "92 days" in bad.json()["error"]["message"]
    assert httpx.get(f"{gateway.url}/api/v1/analytics/usage").status_code == 401


def test_pdf_report_over_http_and_cli(gateway: RunningGateway, tmp_path: Path) -> None:
    period = NOW.strftime("%Y-%m")
    with gateway.client() as client:
        pdf = client.get("/api/v1/analytics/report", params={"period": period})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and len(pdf.content) > 3000
    out = tmp_path / "report.pdf"
    done = subprocess.run(
        [AIMM, "report", "--config", str(gateway.config_path), "--period", period, "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "20 requests" in done.stdout and out.read_bytes().startswith(b"%PDF-")
    bad = subprocess.run([AIMM, "report", "--config", str(gateway.config_path), "--period", "Nov", "--out", str(out)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "expected YYYY-MM" in bad.stderr


def test_budget_status_from_the_store(gateway: RunningGateway) -> None:
    status = httpx.get(f"{gateway.url}/api/v1/budgets", headers={"authorization": f"Bearer {API_KEY}"}).json()
    (b,) = status["budgets"]
    # The rows are 30-50 minutes old; near a month boundary some fall in the previous period.
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0)
    expected = sum(r.cost_units for r in _rows() if r.ts_ms >= month_start.timestamp() * 1000) / 10**10
    assert b["name"] == "smart-monthly" and b["source"] == "store"
    assert float(b["costThisPeriod"]) == pytest.approx(expected)
    assert float(b["percentUsed"]) == pytest.approx(expected / 0.05 * 100, abs=0.1)
    assert b["periodEnds"].endswith("T00:00:00Z") and b["lastAction"] is None
    assert float(b["projectedPeriodCost"]) >= float(b["costThisPeriod"])
    assert status["thresholdEvents"] == []
    # The feed needs the viewer role (or auth.stats_without_credentials, for the operator).
    assert httpx.get(f"{gateway.url}/api/v1/budgets").status_code == 401
