"""Smoke test for tests/k8s_harness.py: a real apiserver + controller-manager.

Needs the binaries from `make envtest` (bash hack/envtest.sh); fails with that
hint when they are missing.
"""

from __future__ import annotations

import os
import textwrap
import time
import uuid

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.k8s_harness import ControlPlane, ControlPlaneError


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


@pytest.fixture(scope="module")
def cp():
    plane = ControlPlane().start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def api(cp):
    with cp.api_client() as api_client:
        yield api_client


@pytest.fixture()
def namespace(api):
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def test_apiserver_up_and_kubectl_works(cp):
    assert cp.kubeconfig_path.is_file()
    assert cp.server.startswith("https://127.0.0.1:")
    res = cp.kubectl("get", "--raw", "/readyz")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    version = cp.kubectl("version", "-o", "json", check=True).stdout
    assert '"gitVersion": "v1.' in version  # real version stamped, not v0.0.0-master
    # the admin identity is a cluster-admin (O=system:masters)
    assert cp.kubectl("auth", "can-i", "*", "*", "--all-namespaces").stdout.strip() == "yes"


def test_deployment_gets_replicaset_and_pods_from_controllers(cp, api, namespace):
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    labels = {"app": "smoke"}
    dep = apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="registry.invalid/web:1")]),
                ),
            ),
        ),
    )

    def owned_replicasets():
        rs = apps.list_namespaced_replica_set(namespace).items
        return [r for r in rs if any(o.uid == dep.metadata.uid for o in (r.metadata.owner_references or []))]

    (rs,) = wait_for(owned_replicasets, what="deployment controller to create a ReplicaSet")
    assert rs.spec.replicas == 2

    def owned_pods():
        pods = core.list_namespaced_pod(namespace).items
        return [p for p in pods if any(o.uid == rs.metadata.uid for o in (p.metadata.owner_references or []))]

    pods = wait_for(lambda: len(owned_pods()) == 2 and owned_pods(), what="replicaset controller to create 2 Pods")
    assert all(p.spec.node_name is None for p in pods)  # no scheduler/nodes: never scheduled

    # garbage collector: deleting the Deployment removes its ReplicaSet
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for(lambda: not owned_replicasets(), what="garbage collector to delete the ReplicaSet")


def test_serviceaccount_token_is_rbac_restricted(cp, api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot"))
    )
    tr = core.create_namespaced_service_account_token(
        "robot",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)),
    )
    token = tr.status.token
    assert token and token.count(".") == 2  # a JWT signed with the service-account key

    kubeconfig = cp.kubeconfig_for_token(token)
    username = f"system:serviceaccount:{namespace}:robot"

    # authenticated (not 401) as the ServiceAccount ...
    who = cp.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=kubeconfig)
    assert who.returncode == 0, who.stderr
    assert who.stdout == username

    # ... but RBAC forbids listing secrets cluster-wide: 403 via kubectl ...
    res = cp.kubectl("get", "secrets", "--all-namespaces", kubeconfig=kubeconfig)
    assert res.returncode != 0
    assert "Forbidden" in res.stderr and username in res.stderr, res.stderr

    # ... and via the Python client.
    with cp.api_client(kubeconfig) as sa_api:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(sa_api).list_secret_for_all_namespaces()
        assert exc.value.status == 403

        # Granting a namespaced Role makes the namespaced list work (RBAC is live).
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="read-secrets"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="read-secrets"),
                role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-secrets"),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="robot", namespace=namespace)],
            ),
        )
        items = wait_for(
            lambda: _try_list_secrets(client.CoreV1Api(sa_api), namespace),
            timeout=10,
            what="RoleBinding to take effect",
        )
        assert isinstance(items, list)
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(sa_api).list_secret_for_all_namespaces()
        assert exc.value.status == 403


def _try_list_secrets(core, namespace):
    try:
        return core.list_namespaced_secret(namespace).items or ["<empty>"]
    except ApiException as exc:
        if exc.status == 403:
            return None
        raise


def test_apply_dir_waits_for_crd_established(cp, api, tmp_path):
    (tmp_path / "crd.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: widgets.smoke.aimm.test
        spec:
          group: smoke.aimm.test
          scope: Namespaced
          names: {plural: widgets, singular: widget, kind: Widget}
          versions:
            - name: v1
              served: true
              storage: true
              schema:
                openAPIV3Schema:
                  type: object
                  properties:
                    spec:
                      type: object
                      properties:
                        size: {type: integer}
        """)
    )
    names = cp.apply_dir(tmp_path)
    assert names == ["customresourcedefinition.apiextensions.k8s.io/widgets.smoke.aimm.test"]
    # Established right away: a custom object can be created immediately.
    obj = client.CustomObjectsApi(api).create_namespaced_custom_object(
        "smoke.aimm.test",
        "v1",
        "default",
        "widgets",
        {
            "apiVersion": "smoke.aimm.test/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        },
    )
    assert obj["spec"]["size"] == 3
    assert cp.kubectl("get", "widgets", "w1", "-o", "jsonpath={.spec.size}", check=True).stdout == "3"


def test_namespace_deletion_finalized_by_controller(cp, api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm")))
    core.delete_namespace(namespace)

    def gone():
        try:
            core.read_namespace(namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, timeout=90, what="namespace controller to finalize the namespace")


def test_stop_terminates_processes_and_removes_tmp(cp):
    procs = [p.popen for p in cp._procs]
    tmp = cp.tmp_dir
    assert {p.name for p in cp._procs} == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(p.poll() is None for p in procs)
    cp.stop()
    assert all(p.poll() is not None for p in procs)
    if os.environ.get("AIMM_K8S_KEEP_TMP") != "1":
        assert not tmp.exists()
    cp.stop()  # idempotent


def test_missing_binaries_tell_how_to_build(tmp_path):
    with pytest.raises(ControlPlaneError, match="make envtest"):
        ControlPlane(bin_dir=tmp_path)


def test_startup_failure_reports_process_log_tail():
    plane = ControlPlane(extra_apiserver_args=["--no-such-flag"], controller_manager=False)
    with pytest.raises(ControlPlaneError) as exc:
        plane.start()
    msg = str(exc.value)
    assert "kube-apiserver died" in msg
    assert "unknown flag: --no-such-flag" in msg  # from the apiserver's own log
    assert not plane._procs  # etcd was stopped again
