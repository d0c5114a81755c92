"""ServiceMonitor and PrometheusRule: created when the Prometheus Operator's CRDs exist, skipped
with a condition when they do not, deleted when switched off."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.k8s_harness import ControlPlane
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model


def monitoring_crd(kind: str, plural: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def install_crds(control_plane: ControlPlane) -> None:
    crds = [monitoring_crd("ServiceMonitor", "servicemonitors"), monitoring_crd("PrometheusRule", "prometheusrules")]
    control_plane.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(c) for c in crds), check=True)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
        check=True,
    )


def remove_crds(control_plane: ControlPlane) -> None:
    control_plane.kubectl(
        "delete",
        "crd",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "--wait=true",
        "--ignore-not-found",
        check=True,
    )


@pytest.fixture()
def prometheus_operator_crds(control_plane: ControlPlane, api: Api) -> Iterator[None]:
    install_crds(control_plane)
    yield
    remove_crds(control_plane)


def test_monitoring_skipped_without_crds(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw"))
    gw = wait_condition(api, "AIGateway", ns, "gw", "Monitoring", "False", reason="NotInstalled")
    assert "Prometheus Operator" in api.condition(gw, "Monitoring")["message"]
    assert api.condition(gw, "Degraded")["status"] == "False"  # skipping is not a failure
    api.apply(gateway(ns, "gw", monitoring={"serviceMonitor": False, "prometheusRule": False}))
    wait_condition(api, "AIGateway", ns, "gw", "Monitoring", "False", reason="Disabled", timeout=5)


def test_monitoring_applied_with_crds_and_removed_when_off(
    api: Api, running, ns: str, prometheus_operator_crds: None
) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw", monitoring={"alerts": {"errorRatePercent": 2}}))
    wait_condition(api, "AIGateway", ns, "gw", "Monitoring", "True", reason="Applied")
    sm_path = f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors/gw"
    pr_path = f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/prometheusrules/gw"
    sm = api.request("GET", sm_path).json()
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["metadata"]["ownerReferences"][0]["kind"] == "AIGateway"
    rules = api.request("GET", pr_path).json()["spec"]["groups"][0]["rules"]
    assert "> 0.02" in next(r["expr"] for r in rules if r["alert"] == "AIMMHighErrorRate")

    api.apply(gateway(ns, "gw", monitoring={"serviceMonitor": False}))
    wait_for(lambda: api.request("GET", sm_path).status_code == 404, timeout=5, what="ServiceMonitor deleted")
    assert api.request("GET", pr_path).status_code == 200


def test_monitoring_crds_installed_later_are_noticed_within_seconds(
    api: Api, running, ns: str, control_plane: ControlPlane
) -> None:
    """The operator watches CRDs: no waiting for the next resync (20 s here) once they appear."""
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gw"))
    wait_condition(api, "AIGateway", ns, "gw", "Monitoring", "False", reason="NotInstalled")
    try:
        install_crds(control_plane)
        wait_condition(api, "AIGateway", ns, "gw", "Monitoring", "True", reason="Applied", timeout=8)
        path = f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/servicemonitors/gw"
        assert api.request("GET", path).status_code == 200
    finally:
        remove_crds(control_plane)
