"""GitOps health of the statuses the real operator writes, read the way Flux and Argo CD read
them: kstatus (sigs.k8s.io/cli-utils, via hack/gotools/kstatuscheck) and the Argo CD health
scripts in deploy/argocd/health/ (run with lua5.4).

Every kind is driven into its states on the real API server with the operator running. There is
no kubelet, so for a ready gateway the test plays its part: it marks the gateway pod Ready
(status subresource), and the real Deployment controller computes the rollout from there.
States that need a broken spec the API server's validation already refuses (Stalled) are
covered from fixtures in tests/install/test_kstatus_fixtures.py.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.install.argocd import health
from tests.install.gotools import gotool
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import budget, gateway, model, policy, route


def kstatus(obj: dict[str, Any]) -> dict[str, str]:
    res = subprocess.run(
        [gotool("kstatuscheck")], input=yaml.safe_dump(obj), capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def small_gateway(ns: str, **spec: Any) -> dict[str, Any]:
    return gateway(ns, "gw", replicas={"min": 1, "max": 1}, autoscaling={"enabled": False}, **spec)


def mark_gateway_pods_ready(api: Api, ns: str) -> None:
    """What the kubelet does for a started, passing pod: phase Running, Ready=True."""
    pods = wait_for(lambda: api.request("GET", f"/api/v1/namespaces/{ns}/pods").json()["items"], what="gateway pods")
    now = "2026-01-01T00:00:00Z"
    for pod in pods:
        status = {
            "phase": "Running",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
        }
        r = api.request(
            "PATCH",
            f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/status",
            {"status": status},
            content_type="application/merge-patch+json",
        )
        assert r.status_code == 200, r.text


def settled(api: Api, kind: str, ns: str, name: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    def ok() -> dict[str, Any] | None:
        obj = api.get(kind, ns, name)
        st = (obj or {}).get("status") or {}
        return obj if obj and st.get("observedGeneration") == obj["metadata"]["generation"] and check(obj) else None

    return wait_for(ok, timeout=30, what=f"{kind} {name} settled")


def ready(api: Api, status: str, reason: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        c = api.condition(obj, "Ready")
        return c is not None and c["status"] == status and (reason is None or c["reason"] == reason)

    return check


def assert_health(obj: dict[str, Any], kstatus_is: str | set[str], argo_is: str, tmp_path: Path) -> None:
    got = kstatus(obj)
    want = {kstatus_is} if isinstance(kstatus_is, str) else kstatus_is
    assert got["status"] in want, (got, obj.get("status"))
    assert health(obj, tmp_path)[0] == argo_is, obj.get("status")


def test_gateway_rolling_out_then_ready(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.apply(model(ns, "m"))
    api.apply(small_gateway(ns))
    gw = settled(api, "AIGateway", ns, "gw", ready(api, "False", "RolloutInProgress"))
    assert_health(gw, "InProgress", "Progressing", tmp_path)

    mark_gateway_pods_ready(api, ns)
    gw = settled(api, "AIGateway", ns, "gw", ready(api, "True"))
    assert_health(gw, "Current", "Healthy", tmp_path)
    m = settled(api, "AIModel", ns, "m", ready(api, "True"))
    assert_health(m, "Current", "Healthy", tmp_path)


def test_accepted_policy_and_budget_are_current(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.apply(model(ns, "m"))
    api.apply(policy(ns, "rp", [route("smart", "m")]))
    api.apply(budget(ns, "b", 100, scope={"gateway": "gw"}))
    api.apply(small_gateway(ns))
    rp = settled(api, "RoutingPolicy", ns, "rp", ready(api, "True"))
    assert_health(rp, "Current", "Healthy", tmp_path)
    b = settled(api, "CostBudget", ns, "b", ready(api, "True"))
    assert_health(b, "Current", "Healthy", tmp_path)


def test_spec_change_not_yet_observed_is_in_progress(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.apply(model(ns, "m"))
    m = wait_condition(api, "AIModel", ns, "m", "Stalled", "False")
    # As a client sees it right after a change, before the operator's next status write.
    m["metadata"]["generation"] += 1
    assert_health(m, "InProgress", "Progressing", tmp_path)


def test_policy_with_missing_model_is_not_current(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.apply(small_gateway(ns))
    api.apply(policy(ns, "rp", [route("smart", "nowhere")]))
    rp = settled(api, "RoutingPolicy", ns, "rp", ready(api, "False", "UnresolvedRefs"))
    assert health(rp, tmp_path)[0] == "Degraded"
    assert kstatus(rp)["status"] in {"InProgress", "Failed"}, rp["status"]


def test_gateway_whose_default_policy_is_missing_is_not_current(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.apply(model(ns, "m"))
    api.apply(small_gateway(ns, routing={"defaultPolicy": "gone"}))
    mark_gateway_pods_ready(api, ns)
    # Its pods are ready, but the default policy it names does not exist.
    gw = settled(api, "AIGateway", ns, "gw", lambda o: api.condition(o, "Progressing")["status"] == "False")
    assert api.condition(gw, "ResolvedRefs")["status"] == "False"
    assert api.condition(gw, "Degraded")["status"] == "True"
    assert health(gw, tmp_path)[0] == "Degraded"
    assert kstatus(gw)["status"] in {"InProgress", "Failed"}, gw["status"]


def test_budget_for_a_missing_gateway_is_not_current(api: Api, running, ns: str, tmp_path: Path) -> None:
    api.apply(budget(ns, "b", 100, scope={"gateway": "nowhere"}))
    b = settled(api, "CostBudget", ns, "b", ready(api, "False", "UnresolvedRefs"))
    assert health(b, tmp_path)[0] == "Degraded"
    assert kstatus(b)["status"] in {"InProgress", "Failed"}, b["status"]
