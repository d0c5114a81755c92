"""An idle fleet costs the stats poll next to nothing, and what changes still reaches status.

A poll that finds every pod answering exactly as last time, in a namespace whose objects did not
change, skips its O(N) part (operator/stats.py `PollMemo`). What must never happen is a status left
stale by that skip: a pod's new figures, or an object's change while the figures stay the same.
"""

from __future__ import annotations

import time

from tests.operator.kubeapi import Api, host_ip, wait_condition, wait_for
from tests.operator.manifests import gateway, model
from tests.operator.proxy import FaultProxy
from tests.operator.statsserver import endpoint_slice, stats_server


def figures(requests: int) -> dict:
    return {
        "requests_total": requests,
        "errors_total": 0,
        "requests_per_minute": 0.0,
        "error_rate": 0.0,
        "p95_latency_ms": None,
        "cost_usd_total": "0",
        "circuit_state": "closed",
        "last_error": None,
        "available": True,
    }


def status_writes(proxy: FaultProxy, ns: str) -> int:
    seen = list(proxy.seen)
    return sum(1 for s in seen if s.method == "PATCH" and f"/namespaces/{ns}/" in s.path and s.path.endswith("/status"))


def test_idle_polls_write_nothing_and_changes_still_arrive(api: Api, running, ns: str, proxy: FaultProxy) -> None:
    api.apply(model(ns, "a"))
    api.apply(model(ns, "b"))
    api.apply(gateway(ns, "gw"))
    wait_condition(api, "AIModel", ns, "a", "Ready", "True")
    served = api.get("AIGateway", ns, "gw")["status"]["configHash"]
    doc = {"config_hash": served, "models": {"a": figures(5), "b": figures(1)}}
    with stats_server(doc) as (port, live):
        api.apply(endpoint_slice(ns, "gw", "gw-pod", host_ip(), port))
        wait_for(lambda: (m := api.get("AIModel", ns, "a")) and m["status"].get("requestsTotal") == 5, what="stats")
        wait_condition(api, "AIModel", ns, "b", "Available", "True")

        # Idle: the same answers poll after poll (0.5 s interval) write no status.
        time.sleep(1.5)
        before = status_writes(proxy, ns)
        time.sleep(3)
        assert status_writes(proxy, ns) == before

        # New figures from the pod after idle polls: written.
        live["models"]["a"] = figures(9)
        wait_for(lambda: api.get("AIModel", ns, "a")["status"].get("requestsTotal") == 9, what="new figures")

        # The same figures, but the object changed: its live condition follows (the new generation).
        api.merge_patch("AIModel", ns, "b", {"spec": {"weight": 3}})
        wait_for(
            lambda: (api.condition(api.get("AIModel", ns, "b"), "Available") or {}).get("observedGeneration") == 2,
            what="Available observing generation 2",
        )
