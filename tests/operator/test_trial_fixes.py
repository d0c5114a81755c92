"""Operator fixes from the install trial (issue 13), on the real API server."""

from __future__ import annotations

import time

import pytest

from tests.operator.conftest import OperatorProcess
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model, policy, route
from tests.operator.proxy import FaultProxy


def events(api: Api, ns: str, name: str) -> list[dict]:
    items = api.request("GET", f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


def test_a_new_policy_naming_an_existing_route_gets_route_conflict(api: Api, running: OperatorProcess, ns: str) -> None:
    api.apply(model(ns, "m1"))
    api.apply(model(ns, "m2"))
    api.apply(gateway(ns, "gw"))
    api.apply(policy(ns, "z-owner", [route("smart", "m1")]))
    wait_condition(api, "RoutingPolicy", ns, "z-owner", "Ready", "True")
    # "a-new" sorts first by name, but the route stays with its current owner.
    api.apply(policy(ns, "a-new", [route("smart", "m2")]))
    new = wait_condition(api, "RoutingPolicy", ns, "a-new", "Ready", "False", reason="RouteConflict")
    assert "'z-owner'" in api.condition(new, "Ready")["message"]
    assert api.condition(new, "Stalled")["status"] == "True"  # kstatus: not Current
    owner = api.get("RoutingPolicy", ns, "z-owner")
    assert api.condition(owner, "Ready")["status"] == "True" and owner["status"]["servedRoutes"] == ["smart"]


def test_a_refused_config_apply_is_reported_backed_off_and_blocks_nothing_else(
    api: Api, running: OperatorProcess, proxy: FaultProxy, ns: str
) -> None:
    refuse = proxy.inject("PATCH", rf"/namespaces/{ns}/configmaps/bad-config$", 422, times=10_000)
    try:
        api.apply(model(ns, "m"))
        api.apply(gateway(ns, "bad"))
        api.apply(gateway(ns, "good"))
        gw = wait_condition(api, "AIGateway", ns, "bad", "Stalled", "True", reason="ApplyRefused")
        assert api.condition(gw, "Ready")["status"] == "False" and "configHash" not in gw["status"]
        # The other gateway in the namespace is not blocked.
        wait_for(lambda: api.get("ConfigMap", ns, "good-config"), what="good gateway's ConfigMap")
        m = wait_condition(api, "AIModel", ns, "m", "Ready", "False", reason="ConfigNotApplied")
        assert "bad" in api.condition(m, "Ready")["message"]
        # Exponential backoff: a few attempts in 6 s, never one a second.
        start = refuse.hits
        time.sleep(6)
        assert refuse.hits - start <= 4, refuse.hits - start
        assert not [e for e in events(api, ns, "bad") if e["reason"] in ("ConfigCreated", "ConfigUpdated")]
    finally:
        refuse.remaining = 0
    # Once the server accepts it again, everything converges (within the backoff).
    wait_condition(api, "AIGateway", ns, "bad", "Stalled", "False", timeout=40)
    assert api.get("ConfigMap", ns, "bad-config") is not None
    m = wait_condition(api, "AIModel", ns, "m", "Ready", "True", reason="Accepted")
    assert sorted(m["status"]["gateways"]) == ["bad", "good"]
    wait_for(lambda: [e for e in events(api, ns, "bad") if e["reason"] == "ConfigCreated"], what="ConfigCreated")


def test_an_object_that_becomes_ready_gets_an_event(api: Api, running: OperatorProcess, ns: str) -> None:
    api.apply(gateway(ns, "gw"))
    api.apply(model(ns, "m"))
    wait_condition(api, "AIModel", ns, "m", "Ready", "True")
    ev = wait_for(lambda: [e for e in events(api, ns, "m") if e["type"] == "Normal"], what="Ready event")
    assert ev[0]["reason"] == "Accepted" and ev[0]["message"].startswith("Ready=True")


def test_default_policy_pointing_at_a_deleted_model_degrades_the_gateway(
    api: Api, running: OperatorProcess, ns: str
) -> None:
    api.apply(model(ns, "m1"))
    api.apply(model(ns, "m2"))
    api.apply(policy(ns, "rp", [route("smart", "m1", "m2")]))
    api.apply(gateway(ns, "gw", routing={"defaultPolicy": "rp"}))
    wait_condition(api, "AIGateway", ns, "gw", "ResolvedRefs", "True")
    api.delete("AIModel", ns, "m2")
    gw = wait_condition(api, "AIGateway", ns, "gw", "Degraded", "True", reason="UnresolvedRefs")
    assert "'m2'" in api.condition(gw, "Degraded")["message"]
    assert api.condition(gw, "Stalled")["status"] == "True"
    rp = wait_condition(api, "RoutingPolicy", ns, "rp", "Stalled", "True", reason="UnresolvedRefs")
    assert api.condition(rp, "Ready")["status"] == "False"


def test_placement_and_hpa_behavior_pass_through_and_bounds_hold(api: Api, running: OperatorProcess, ns: str) -> None:
    api.apply(model(ns, "m"))
    api.apply(
        gateway(
            ns,
            "gw",
            placement={
                "nodeSelector": {"pool": "ai"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 50,
                                "podAffinityTerm": {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": {"app": "x"}},
                                },
                            }
                        ]
                    }
                },
                "podLabels": {"team": "ml"},
                "podAnnotations": {"note": "hi"},
                "imagePullSecrets": ["regcred"],
                "serviceAccountAnnotations": {"iam.example/role": "gateway"},
            },
            autoscaling={"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}},
        )
    )
    dep = wait_for(lambda: api.get("Deployment", ns, "gw"), what="Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "ai"} and pod["tolerations"][0]["key"] == "gpu"
    assert pod["affinity"]["podAntiAffinity"] and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert dep["spec"]["template"]["metadata"]["labels"]["team"] == "ml"
    hpa = wait_for(lambda: api.get("HorizontalPodAutoscaler", ns, "gw"), what="HPA")
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    sa = api.get("ServiceAccount", ns, "gw-gateway")
    assert sa["metadata"]["annotations"]["iam.example/role"] == "gateway"
    # Size bounds are enforced at admission: 17 headers is one too many.
    with pytest.raises(AssertionError, match=r"failed: 422 .*headers"):
        api.apply(model(ns, "big", headers={f"x-h{i}": "v" for i in range(17)}))
