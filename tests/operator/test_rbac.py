"""The operator runs as its own ServiceAccount with the shipped RBAC, and that RBAC is least privilege."""

from __future__ import annotations

import httpx
import pytest
import yaml

from aimm_operator.credentials import load_credentials
from aimm_operator.kube import _ssl_context
from tests.operator.conftest import OPERATOR_NS, OPERATOR_SA, REPO
from tests.operator.kubeapi import Api

SA = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"


@pytest.fixture()
def as_operator(operator_kubeconfig) -> httpx.Client:
    creds = load_credentials(str(operator_kubeconfig))
    return httpx.Client(
        base_url=creds.server,
        verify=_ssl_context(creds),
        timeout=10,
        headers={"Authorization": f"Bearer {creds.bearer()}"},
    )


def test_identity_is_the_service_account(as_operator: httpx.Client) -> None:
    r = as_operator.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"]["userInfo"]["username"] == SA


def test_needed_verbs_work_and_unneeded_are_denied(as_operator: httpx.Client, api: Api, ns: str) -> None:
    # Needed: server-side apply of a ConfigMap in a user namespace.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": ns}, "data": {"k": "v"}}
    r = as_operator.patch(
        f"/api/v1/namespaces/{ns}/configmaps/probe",
        content=yaml.safe_dump(cm),
        params={"fieldManager": "aimm-operator", "force": "true"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert r.status_code == 201, r.text
    assert as_operator.get("/apis/aimm.io/v1alpha1/aimodels").status_code == 200
    assert as_operator.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices").status_code == 200
    # Listing (and watching) CRDs, to notice the Prometheus Operator's: read-only.
    assert as_operator.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").status_code == 200

    # Not needed, so denied: listing or changing Secrets, Pods, RBAC, changing CRDs, reading or deleting ConfigMaps.
    api.create_secret(ns, "s", {"k": "v"})
    denied = [
        ("GET", "/api/v1/secrets"),
        ("GET", f"/api/v1/namespaces/{ns}/secrets"),
        ("PUT", f"/api/v1/namespaces/{ns}/secrets/s"),
        ("PATCH", f"/api/v1/namespaces/{ns}/secrets/s"),
        ("DELETE", f"/api/v1/namespaces/{ns}/secrets/s"),
        ("GET", "/api/v1/pods"),
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/probe"),
        ("DELETE", f"/api/v1/namespaces/{ns}/configmaps/probe"),
        ("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/aimodels.aimm.io"),
        ("PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/aimodels.aimm.io"),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
        ("DELETE", f"/apis/aimm.io/v1alpha1/namespaces/{ns}/aimodels/x"),
        ("GET", "/api/v1/namespaces"),
    ]
    for method, path in denied:
        r = as_operator.request(method, path)
        assert r.status_code == 403, (method, path, r.status_code)


def test_kubectl_auth_can_i(control_plane) -> None:
    def can(*args: str) -> bool:
        res = control_plane.kubectl("auth", "can-i", *args, f"--as={SA}")
        return res.stdout.strip() == "yes"

    assert can("patch", "deployments.apps", "-n", "default")
    assert can("patch", "aigateways.aimm.io/status", "-n", "default")
    assert can("create", "events", "-n", "default")
    assert can("get", "secrets", "-n", "default")  # its viewer-key Secret, by name (operator/viewer.py)
    assert not can("list", "secrets", "--all-namespaces")
    assert not can("list", "secrets", "-n", "default")
    assert not can("watch", "secrets", "-n", "default")
    assert not can("patch", "secrets", "-n", "default")
    assert not can("create", "pods", "-n", "default")
    assert not can("get", "pods", "-n", "default") and not can("list", "pods", "--all-namespaces")
    assert can("patch", "pods", "-n", "default")  # the config-hash annotation (operator/podkick.py)
    assert not can("create", "roles.rbac.authorization.k8s.io", "-n", "default")
    assert not can("delete", "deployments.apps", "-n", "default")
    assert not can("*", "*")


def test_shipped_rbac_has_no_wildcards_or_secrets() -> None:
    docs = list(yaml.safe_load_all((REPO / "deploy/operator/02-rbac.yaml").read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        if "pods" in rule["resources"]:  # one annotation on a gateway's pods (operator/podkick.py)
            assert rule["resources"] == ["pods"] and rule["verbs"] == ["patch"]
        if "secrets" in rule["resources"]:  # only its viewer key: made once, read by name
            assert rule["resources"] == ["secrets"] and sorted(rule["verbs"]) == ["create", "get"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
