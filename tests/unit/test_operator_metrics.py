"""The operator's Prometheus metrics: its own registry, served on a port, moved by reconciles."""

from __future__ import annotations

import asyncio
import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aimm_operator.cli import build_parser
from aimm_operator.handlers import OperatorContext, OperatorSettings
from aimm_operator.kube import Credentials, Kube
from aimm_operator.metrics import OperatorMetrics
from aimm_operator.stats import StatsCache


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_failed_reconcile_is_counted_timed_and_retried_on_the_scraped_endpoint() -> None:
    creds = Credentials(server=f"http://127.0.0.1:{closed_port()}")  # nothing listens: the reconcile fails

    async def run() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        ctx = OperatorContext(OperatorSettings(creds), Kube(creds), httpx.AsyncClient(), StatsCache(30))
        port = ctx.metrics.serve(0, "127.0.0.1")
        try:
            before = await asyncio.to_thread(scrape, port)
            assert before.get(("aimm_operator_reconciles_total", (("result", "error"),)), 0.0) == 0.0
            await ctx.reconcile("team-a")
            return await asyncio.to_thread(scrape, port)
        finally:
            await ctx.aclose()

    after = asyncio.run(run())
    assert after[("aimm_operator_reconciles_total", (("result", "error"),))] == 1.0
    assert after[("aimm_operator_retries_total", ())] == 1.0
    assert after[("aimm_operator_reconcile_duration_seconds_count", ())] == 1.0
    assert ("aimm_operator_reconciles_total", (("result", "ok"),)) not in after


def test_each_operator_has_its_own_registry() -> None:
    a, b = OperatorMetrics(), OperatorMetrics()
    a.status_writes.inc()
    assert a.registry.get_sample_value("aimm_operator_status_writes_total") == 1.0
    assert b.registry.get_sample_value("aimm_operator_status_writes_total") == 0.0


def test_metrics_port_flag_defaults_off() -> None:
    assert build_parser().parse_args(["-A"]).metrics_port == 0
    assert build_parser().parse_args(["-A", "--metrics-port", "8080"]).metrics_port == 8080
