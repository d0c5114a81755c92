"""After a gateway's config changes, the operator annotates that gateway's pods with the new config
hash (operator/podkick.py), so the kubelet refreshes their mounted ConfigMap at once instead of at
its next periodic sync; the pod template is not touched (no rollout).

There is no kubelet here: the pods are API objects (they stay Pending), found by the operator as the
targets of the gateway Service's EndpointSlice, as on a cluster. The operator runs as its own
ServiceAccount, so the shipped RBAC (patch on pods, nothing else) is what is exercised.
"""

from __future__ import annotations

from typing import Any

from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model
from tests.operator.pods import free_port

ANNOTATION = "aimm.io/config-hash"


def pod(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "stand-in"}},
        "spec": {"automountServiceAccountToken": False, "containers": [{"name": "gateway", "image": "aimm:test"}]},
    }


def slice_of(ns: str, service: str, pods: list[str]) -> dict[str, Any]:
    """What the EndpointSlice controller makes for the Service's pods (not ready: nothing listens)."""
    port = free_port()
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-pods",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "aimm-tests"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [f"10.0.0.{i + 1}"],
                "conditions": {"ready": False},
                "targetRef": {"kind": "Pod", "name": name, "namespace": ns},
            }
            for i, name in enumerate(pods)
        ],
    }


def annotation(api: Api, ns: str, name: str) -> str | None:
    return (api.get("Pod", ns, name)["metadata"].get("annotations") or {}).get(ANNOTATION)


def test_a_config_change_annotates_the_gateways_pods_only(api: Api, running, ns: str) -> None:
    api.apply(model(ns, "a"))
    api.apply(gateway(ns, "gw"))
    wait_condition(api, "AIModel", ns, "a", "Ready", "True")
    wait_for(lambda: api.get("ServiceAccount", ns, "default"), what="the namespace's default ServiceAccount")
    for name in ("gw-pod-1", "gw-pod-2", "other-pod"):
        api.apply(pod(ns, name))
    api.apply(slice_of(ns, "gw", ["gw-pod-1", "gw-pod-2"]))
    first = api.get("AIGateway", ns, "gw")["status"]["configHash"]
    template_generation = api.get("Deployment", ns, "gw")["metadata"]["generation"]
    assert annotation(api, ns, "gw-pod-1") is None  # no change yet: nothing to refresh

    api.merge_patch("AIModel", ns, "a", {"spec": {"weight": 7}})
    new = wait_for(
        lambda: (h := api.get("AIGateway", ns, "gw")["status"].get("configHash")) != first and h, what="a new config"
    )
    wait_for(lambda: annotation(api, ns, "gw-pod-1") == new and annotation(api, ns, "gw-pod-2") == new, what="pods")
    assert annotation(api, ns, "other-pod") is None  # not behind the gateway's Service
    assert api.get("Deployment", ns, "gw")["metadata"]["generation"] == template_generation  # no rollout

    # A pod that went away meanwhile is skipped; the others still get the next hash.
    api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/gw-pod-2")
    api.merge_patch("AIModel", ns, "a", {"spec": {"weight": 8}})
    newer = wait_for(
        lambda: (h := api.get("AIGateway", ns, "gw")["status"].get("configHash")) not in (first, new) and h,
        what="a newer config",
    )
    wait_for(lambda: annotation(api, ns, "gw-pod-1") == newer, what="pod 1 annotated again")
