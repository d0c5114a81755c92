"""Live statistics reach AIModel/CostBudget status and `kubectl get` prints them as columns."""

from __future__ import annotations

import json
import re

from tests.operator.kubeapi import Api, host_ip, wait_condition, wait_for
from tests.operator.manifests import budget, gateway, model, policy, route
from tests.operator.statsserver import endpoint_slice, stats_server


def pod_doc(
    config_hash: str, requests: int, rpm: float, error_rate: float, p95: float, cost: str, cheap_circuit: str = "closed"
) -> dict:
    return {
        "config_hash": config_hash,
        "models": {
            "gpt": {
                "requests_total": requests,
                "errors_total": requests // 40,
                "requests_per_minute": rpm,
                "error_rate": error_rate,
                "p95_latency_ms": p95,
                "cost_usd_total": cost,
                "circuit_state": "closed",
                "last_error": None,
                "available": True,
            },
            "cheap": {
                "requests_total": 7,
                "errors_total": 7,
                "requests_per_minute": 1.0,
                "error_rate": 1.0,
                "p95_latency_ms": None,
                "cost_usd_total": "0",
                "circuit_state": cheap_circuit,
                "last_error": "upstream returned 503",
                "available": cheap_circuit != "open",
            },
        },
    }


def budgets_doc(cost: str, percent: str, thresholds: list[int]) -> dict:
    """A gateway's GET /api/v1/budgets: the fleet's figure, and the crossings this replica announced."""
    return {
        "budgets": [
            {
                "name": "monthly",
                "costThisPeriod": cost,
                "percentUsed": percent,
                "projectedPeriodCost": "9.1000",
                "periodStart": "2026-11-01T00:00:00Z",
                "periodEnds": "2026-12-01T00:00:00Z",
                "state": "Warning",
                "action": "alert",
                "lastAction": None,
                "source": "state",
            }
        ],
        "thresholdEvents": [
            {
                "budget": "monthly",
                "threshold": t,
                "percentUsed": percent,
                "spentUsd": cost,
                "periodStart": "2026-11-01T00:00:00Z",
                "periodEnds": "2026-12-01T00:00:00Z",
                "at": "2026-11-20T10:00:00Z",
            }
            for t in thresholds
        ],
    }


def rows(text: str) -> dict[str, dict[str, str]]:
    """`kubectl get` table output -> {name: {column: value}}, cut at the header's column offsets."""
    out: dict[str, dict[str, str]] = {}
    starts: list[tuple[str, int]] = []
    for line in text.splitlines():
        if not line.strip():
            starts = []
            continue
        if line.startswith("NAME"):
            starts = [(m.group(), m.start()) for m in re.finditer(r"\S+", line)]
            continue
        cells = {}
        for i, (col, start) in enumerate(starts):
            end = starts[i + 1][1] if i + 1 < len(starts) else None
            cells[col] = line[start:end].strip()
        out[cells["NAME"]] = cells
    return out


STATUS_MANAGERS = ("aimm-operator", "aimm-operator-stats")
# The operator's status entries in managedFields (fieldsV1, compact JSON), summed over its managers:
# 409 / 437 / 419 bytes for the AIModel / CostBudget / AIGateway below with atomic conditions, 861 / 889 /
# 1,232 when every condition's seven leaves were recorded.
STATUS_FIELDS_BOUND = 500


def status_ownership(obj: dict) -> dict[str, dict]:
    """The operator's status entries in managedFields, by manager."""
    return {
        e["manager"]: e["fieldsV1"]
        for e in obj["metadata"]["managedFields"]
        if e["manager"] in STATUS_MANAGERS and e.get("subresource") == "status"
    }


def assert_conditions_owned_whole(obj: dict, managers: tuple[str, ...]) -> None:
    """Each condition is one atomic entry in managedFields (not its seven leaves), each writer owns
    its own condition types, and the operator's status entries stay small: every `kubectl get` row
    carries them (its Table rows include the object's metadata)."""
    owned = status_ownership(obj)
    assert set(owned) == set(managers), owned
    types: list[str] = []
    for fields in owned.values():
        conds = fields["f:status"].get("f:conditions", {})
        assert all(v == {} for v in conds.values()), conds  # `k:{"type":...}: {}`, no per-leaf entries
        types += [json.loads(k.removeprefix("k:"))["type"] for k in conds]
    assert sorted(types) == sorted(c["type"] for c in obj["status"]["conditions"])  # disjoint, all owned
    size = sum(len(json.dumps(f, separators=(",", ":"))) for f in owned.values())
    assert size <= STATUS_FIELDS_BOUND, f"{obj['kind']} {obj['metadata']['name']}: status managedFields {size} bytes"


def test_kubectl_get_shows_live_columns(api: Api, running, ns: str, control_plane) -> None:
    api.apply(model(ns, "gpt", provider="openai", upstream="gpt-4o-mini"))
    api.apply(model(ns, "cheap"))
    api.apply(policy(ns, "rp", [route("smart", ("gpt", 3), ("cheap", 1))], algorithm="intelligent"))
    api.apply(budget(ns, "monthly", 10, alertThresholds=[50, 80, 100]))
    api.apply(gateway(ns, "gw"))
    wait_condition(api, "AIModel", ns, "gpt", "Ready", "True")
    wait_condition(api, "CostBudget", ns, "monthly", "Ready", "True")
    served = api.get("AIGateway", ns, "gw")["status"]["configHash"]

    ip = host_ip()
    with (
        stats_server(pod_doc(served, 120, 40.0, 0.025, 850.0, "1.2"), budgets_doc("6.5000", "65.0", [50])) as (p1, _),
        stats_server(
            pod_doc(served, 80, 20.0, 0.05, 420.0, "0.8", cheap_circuit="open"), budgets_doc("6.5000", "65.0", [])
        ) as (p2, doc2),
    ):
        api.apply(endpoint_slice(ns, "gw", "gw-pod-a", ip, p1))
        api.apply(endpoint_slice(ns, "gw", "gw-pod-b", ip, p2))

        gpt = wait_for(
            lambda: (m := api.get("AIModel", ns, "gpt")) and m["status"].get("requestsTotal") == 200 and m,
            what="stats summed over the two pods",
        )
        st = gpt["status"]
        assert st["requestsPerMinute"] == 60.0
        assert st["p95Latency"] == "850ms" and st["p95LatencyMs"] == 850.0
        assert st["errorRate"] == "3.33%"  # weighted by traffic: (40*2.5% + 20*5%) / 60
        assert st["costThisPeriod"] == "2.0000" and st["circuitState"] == "closed"
        assert api.condition(gpt, "Available")["status"] == "True"
        assert api.condition(gpt, "Ready")["status"] == "True"  # the reconciler's condition survives
        # Both writers' conditions kept side by side, each owned whole (CRD: conditions' items atomic).
        assert_conditions_owned_whole(gpt, STATUS_MANAGERS)

        cheap = wait_condition(api, "AIModel", ns, "cheap", "Available", "False", reason="CircuitOpen")
        assert cheap["status"]["circuitState"] == "open" and cheap["status"]["lastError"] == "upstream returned 503"

        b = wait_for(
            lambda: (x := api.get("CostBudget", ns, "monthly")) and x["status"].get("costThisPeriod") == "6.5000" and x
        )
        bs = b["status"]
        assert bs["remaining"] == "3.5000" and bs["percentUsed"] == "65.0%" and bs["state"] == "Warning"
        assert (bs["periodStart"], bs["periodEnds"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
        assert bs["announcedThresholds"] == [50] and bs["projectedPeriodCost"] == "9.1000"
        assert_conditions_owned_whole(b, STATUS_MANAGERS)
        assert_conditions_owned_whole(api.get("AIGateway", ns, "gw"), ("aimm-operator",))

        out = control_plane.kubectl(
            "get", "aimodels,routingpolicies,costbudgets,aigateways", "-n", ns, check=True
        ).stdout
        table = rows(out)
        g = table["aimodel.aimm.io/gpt"]
        assert (
            g["PROVIDER"],
            g["MODEL"],
            g["ENABLED"],
            g["READY"],
            g["CIRCUIT"],
            g["P95"],
            g["ERRORS"],
            g["COST"],
        ) == ("openai", "gpt-4o-mini", "true", "True", "closed", "850ms", "3.33%", "2.0000")
        assert "AGE" in g
        c = table["aimodel.aimm.io/cheap"]
        assert c["CIRCUIT"] == "open" and c["ERRORS"] == "100.00%"
        r = table["routingpolicy.aimm.io/rp"]
        assert (r["ALGORITHM"], r["ROUTES"], r["TARGETS"], r["READY"]) == ("intelligent", "1", "2", "True")
        bb = table["costbudget.aimm.io/monthly"]
        assert (bb["LIMIT"], bb["COST"], bb["USED"], bb["STATE"]) == ("10", "6.5000", "65.0%", "Warning")
        assert bb["PROJECTED"] == "9.1000"
        gw = table["aigateway.aimm.io/gw"]
        assert gw["MODELS"] == "2" and gw["ENDPOINT"] == f"http://gw.{ns}.svc:80" and gw["READY"] == "False"

        # Notable transitions are Events.
        events = api.list("Event", ns)
        reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events}
        assert ("cheap", "CircuitOpened") in reasons
        assert ("monthly", "BudgetThresholdReached") in reasons
        assert ("gw", "ConfigCreated") in reasons
        assert all("sk-" not in e.get("message", "") for e in events)

        # Honest readiness: a pod serving a config without this generation of the model holds Ready.
        doc2["config_hash"] = "0123456789abcdef"  # a config this operator never compiled
        gpt = wait_condition(api, "AIModel", ns, "gpt", "Ready", "False", reason="ConfigNotLoaded")
        assert "1 of 2 pods of AIGateway gw" in api.condition(gpt, "Ready")["message"]
        assert api.condition(gpt, "Reconciling")["status"] == "True"
        doc2["config_hash"] = served
        wait_condition(api, "AIModel", ns, "gpt", "Ready", "True", reason="Accepted")
