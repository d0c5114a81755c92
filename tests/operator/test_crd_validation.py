"""Invalid custom resources are rejected by the API server with the CEL rule's message."""

from __future__ import annotations

import pytest

from tests.operator.kubeapi import Api
from tests.operator.manifests import budget, gateway, model, policy, route

# (manifest builder, expected message) -- one case per x-kubernetes-validations rule.
CASES = {
    "replicas-min-le-max": (
        lambda ns: gateway(ns, replicas={"min": 10, "max": 3}),
        "replicas.min must be less than or equal to replicas.max",
    ),
    "replicas-min-above-default-max": (
        lambda ns: gateway(ns, replicas={"min": 60}),
        "replicas.min must be less than or equal to replicas.max",
    ),
    "weights-non-negative": (
        lambda ns: policy(ns, "rp", [route("r", ("a", -1.0), ("b", 1.0))]),
        "target weights must be >= 0",
    ),
    "weights-not-all-zero": (
        lambda ns: policy(ns, "rp", [route("r", ("a", 0.0), ("b", 0.0))]),
        "target weights must not all be zero",
    ),
    "targets-unique": (
        lambda ns: policy(ns, "rp", [route("r", "a", "a")]),
        "target models must be unique within a route",
    ),
    "route-names-unique": (
        lambda ns: policy(ns, "rp", [route("r", "a"), route("r", "b")]),
        "route names must be unique",
    ),
    "thresholds-at-most-100": (
        lambda ns: budget(ns, "b", 10, alertThresholds=[50, 120]),
        "alert thresholds must be between 1 and 100",
    ),
    "thresholds-ascending": (
        lambda ns: budget(ns, "b", 10, alertThresholds=[80, 50, 100]),
        "alert thresholds must be in ascending order",
    ),
    "limit-positive": (lambda ns: budget(ns, "b", 0), "limitUSD must be greater than 0"),
    "downgrade-needs-target": (
        lambda ns: budget(ns, "b", 10, action="downgrade"),
        "downgradeTo is required when action is downgrade",
    ),
    "endpoint-required": (
        lambda ns: model(ns, "m", provider="openai_compatible"),
        "endpoint is required for provider(s) openai_compatible",
    ),
    "endpoint-is-url": (
        lambda ns: model(ns, "m", provider="openai", endpoint="ftp://x"),
        "endpoint must be an http(s) URL",
    ),
    "max-tokens-le-context": (
        lambda ns: model(ns, "m", contextWindow=1000, maxTokens=2000),
        "maxTokens must not exceed contextWindow",
    ),
}


@pytest.fixture(scope="module")
def vns(api: Api) -> str:
    name = "t-cel-validation"
    api.create_namespace(name)
    return name


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_resource_rejected_with_cel_message(api: Api, vns: str, case: str) -> None:
    build, message = CASES[case]
    manifest = build(vns)
    kind = manifest["kind"]
    from aimm_operator.kube import RESOURCES, resource_path

    api_version, plural = RESOURCES[kind]
    r = api.request("POST", resource_path(api_version, plural, vns), manifest)
    assert r.status_code == 422, r.text
    assert message in r.json()["message"], r.text


def test_valid_resources_accepted_with_defaults(api: Api, vns: str) -> None:
    gw = api.apply(gateway(vns, "defaults"))
    spec = gw["spec"]
    assert spec["replicas"] == {"min": 5, "max": 50}
    assert spec["autoscaling"] == {"enabled": True, "targetCPUUtilizationPercentage": 70}
    assert spec["rollout"] == {"maxSurge": 2, "maxUnavailable": 1}
    assert spec["image"] == "ghcr.io/aimm/ai-multimodel:0.1.0"
    rp = api.apply(policy(vns, "defaults", [route("r", "a")]))["spec"]
    assert rp["algorithm"] == "round_robin"
    assert rp["circuitBreaker"]["failureThreshold"] == 5 and rp["circuitBreaker"]["timeoutSeconds"] == 60
    b = api.apply(budget(vns, "defaults", 5))["spec"]
    assert (b["period"], b["timeZone"], b["alertThresholds"], b["action"]) == ("monthly", "UTC", [50, 80, 100], "alert")
    m = api.apply(model(vns, "defaults"))["spec"]
    assert m["enabled"] is True and m["contextWindow"] == 128000


def test_unknown_provider_and_algorithm_rejected(api: Api, vns: str) -> None:
    r = api.request("POST", f"/apis/aimm.io/v1alpha1/namespaces/{vns}/aimodels", model(vns, "x", provider="nope"))
    assert r.status_code == 422 and "supported values" in r.text
    r = api.request(
        "POST",
        f"/apis/aimm.io/v1alpha1/namespaces/{vns}/routingpolicies",
        policy(vns, "x", [route("r", "a")], algorithm="random"),
    )
    assert r.status_code == 422 and "intelligent" in r.text


def test_kubectl_explain_documents_fields(control_plane) -> None:
    out = control_plane.kubectl("explain", "aigateways.spec.replicas", check=True).stdout
    assert "Fewest gateway pods." in out and "Most gateway pods." in out
    out = control_plane.kubectl("explain", "costbudgets.spec.alertThresholds", check=True).stdout
    assert "ascending" in out
    out = control_plane.kubectl("explain", "aimodels.status.conditions", check=True).stdout
    assert "keyed by type" in out
