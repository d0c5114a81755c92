"""CostBudget status is the fleet's shared truth: three gateway processes on one real Redis, the
operator reading `GET /api/v1/budgets` from one of them.

The traffic goes to the replicas the operator does not read, the status shows it all the same,
each threshold crossing is one Event (not repeated by later polls or an operator restart), and
the figure survives restarting every gateway process (it lives in Redis).
"""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.backing import RedisServer
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import budget, gateway, model
from tests.operator.pods import GatewayPod
from tests.servers import run_asgi_app

THRESHOLDS = [1, 5, 100]
CLIENT_KEY = "sk-aimm-fleet-client"


def chat(pod: GatewayPod, n: int) -> None:
    for _ in range(n):
        r = httpx.post(
            f"{pod.url}/v1/chat/completions",
            timeout=10,
            headers={"Authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hello there"}]},
        )
        assert r.status_code == 200, r.text


def fleet_figure(pods: list[GatewayPod], name: str) -> str:
    """costThisPeriod as every replica reports it: they must agree."""
    figures = {
        next(b for b in p.get("/api/v1/budgets")["budgets"] if b["name"] == name)["costThisPeriod"] for p in pods
    }
    assert len(figures) == 1, figures
    return figures.pop()


def threshold_events(api: Api, ns: str, name: str) -> list[int]:
    """The threshold of each Event on the budget (duplicates kept: there must be none)."""
    return sorted(
        int(re.search(r"threshold (\d+)%", e["message"]).group(1))  # type: ignore[union-attr]
        for e in api.list("Event", ns)
        if e["involvedObject"]["name"] == name and e["reason"] in ("BudgetThresholdReached", "BudgetExceeded")
        for _ in range(e.get("count") or 1)  # an Event repeated in place counts each time
    )


def test_budget_status_is_fleet_wide_and_survives_restarts(
    api: Api, running, ns: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    name = f"b{uuid.uuid4().hex[:8]}"  # the Redis server is shared by the session: a key of our own
    with run_asgi_app(create_mock_app("openai", FaultSettings())) as upstream_url:
        api.create_secret(ns, "redis", {"url": redis_server.url})
        api.create_secret(ns, "gw-auth", {"key": CLIENT_KEY})
        api.apply(
            model(
                ns,
                "echo",
                provider="openai_compatible",
                upstream="mock-gpt",
                endpoint=f"{upstream_url}/v1",
                pricing={"inputPer1k": 1.0, "outputPer1k": 1.0},
            )
        )
        api.apply(budget(ns, name, 1, alertThresholds=THRESHOLDS, action="alert"))
        api.apply(
            gateway(
                ns,
                "gw",
                auth={"apiKeySecretRef": {"name": "gw-auth", "key": "key"}},
                redis={"urlSecretRef": {"name": "redis", "key": "url"}},
            )
        )
        wait_condition(api, "CostBudget", ns, name, "Ready", "True")

        pods = [GatewayPod(api, ns, "gw", f"gw-pod-{i}", tmp_path / f"pod{i}") for i in range(3)]
        try:
            for p in pods:
                p.start()
            # The operator reads the first endpoint (lowest port); the traffic goes to the others.
            others = sorted(pods, key=lambda p: p.port)[1:]
            for p in others:
                chat(p, 3)
            cost = fleet_figure(pods, name)
            assert Decimal(cost) > 0
            b = wait_for(
                lambda: (x := api.get("CostBudget", ns, name)) and x["status"].get("costThisPeriod") == cost and x,
                what=f"costThisPeriod {cost} in status",
            )
            st = b["status"]
            pct = Decimal(st["percentUsed"].rstrip("%"))
            assert pct == (Decimal(cost) * 100).quantize(Decimal("0.1")) and st["source"] == "state"
            assert Decimal(st["projectedPeriodCost"]) >= Decimal(cost) and st["periodEnds"] > st["periodStart"]
            crossed = [t for t in THRESHOLDS if pct >= t]
            assert crossed, f"the traffic should cross a threshold: {pct}%"
            wait_for(lambda: threshold_events(api, ns, name) == crossed, what="one Event per crossing")
            wait_for(
                lambda: api.get("CostBudget", ns, name)["status"]["announcedThresholds"] == crossed,
                what="the crossings recorded in status",
            )
            st = api.get("CostBudget", ns, name)["status"]

            # Later polls and a restarted operator read the record in status: the replicas still
            # report their crossings, and no Event is repeated.
            running.stop()
            running.start()
            chat(others[0], 1)
            cost = fleet_figure(pods, name)
            wait_for(
                lambda: api.get("CostBudget", ns, name)["status"].get("costThisPeriod") == cost,
                what="a poll by the restarted operator",
            )
            pct = Decimal(api.get("CostBudget", ns, name)["status"]["percentUsed"].rstrip("%"))
            time.sleep(1.5)  # three more polls
            assert threshold_events(api, ns, name) == [t for t in THRESHOLDS if pct >= t]

            # Every gateway process restarted (new ports, new endpoints): the figure is in Redis.
            for p in pods:
                p.stop()
            for i, p in enumerate(pods):
                pods[i] = GatewayPod(api, ns, "gw", p.name, tmp_path / f"pod{i}-again").start()
            assert fleet_figure(pods, name) == cost
            chat(pods[1], 1)
            after = fleet_figure(pods, name)
            assert Decimal(after) > Decimal(cost)
            wait_for(
                lambda: api.get("CostBudget", ns, name)["status"].get("costThisPeriod") == after,
                what="status follows the restarted fleet",
            )
            pct_after = Decimal(api.get("CostBudget", ns, name)["status"]["percentUsed"].rstrip("%"))
            wait_for(
                lambda: threshold_events(api, ns, name) == [t for t in THRESHOLDS if pct_after >= t],
                what="no crossing announced twice, a new one once",
            )
        finally:
            for p in pods:
                p.stop()
