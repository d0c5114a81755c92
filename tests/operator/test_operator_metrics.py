"""The operator's metrics move with a real reconcile against the real API server (scraped over HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aimm_operator.credentials import load_credentials
from aimm_operator.handlers import OperatorContext, OperatorSettings
from aimm_operator.kube import Kube
from aimm_operator.stats import StatsCache
from tests.operator.conftest import OperatorProcess
from tests.operator.kubeapi import Api
from tests.operator.manifests import model


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_reconcile_moves_the_scraped_counters(
    api: Api, ns: str, operator_kubeconfig: Path, operator: OperatorProcess
) -> None:
    # The session's operator process would race this reconcile for the model's first status (and,
    # writing it first, leave nothing to count here): stopped, the `running` fixture restarts it.
    operator.stop()
    creds = load_credentials(str(operator_kubeconfig))
    api.apply(model(ns, "m"))  # no status yet: the reconcile writes one

    async def run() -> dict[str, float]:
        ctx = OperatorContext(OperatorSettings(creds), Kube(creds), httpx.AsyncClient(), StatsCache(30))
        port = ctx.metrics.serve(0, "127.0.0.1")
        try:
            await ctx.reconcile(ns)
            return await asyncio.to_thread(scrape, port)
        finally:
            await ctx.aclose()

    after = asyncio.run(run())
    assert after["aimm_operator_reconciles_total{result=ok}"] == 1.0
    assert after.get("aimm_operator_reconciles_total{result=error}", 0.0) == 0.0
    assert after["aimm_operator_status_writes_total"] >= 1.0
    assert after["aimm_operator_reconcile_duration_seconds_count"] == 1.0
    assert (api.get("AIModel", ns, "m") or {}).get("status")  # the write the counter saw is real
