"""Killing the operator mid-reconcile converges after restart; 409 Conflicts are retried, not fatal."""

from __future__ import annotations

import time

import yaml

from tests.operator.conftest import OperatorProcess
from tests.operator.kubeapi import Api, wait_condition, wait_for
from tests.operator.manifests import gateway, model, policy, route
from tests.operator.proxy import FaultProxy

CHILDREN = ("ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget")


def served_models(api: Api, ns: str, gw: str) -> list[str]:
    cm = api.get("ConfigMap", ns, f"{gw}-config")
    return [m["name"] for m in yaml.safe_load(cm["data"]["config.yaml"])["models"]] if cm else []


def assert_converged(api: Api, ns: str, gateways: list[str], models: list[str]) -> None:
    for gw in gateways:
        wait_for(lambda gw=gw: served_models(api, ns, gw) == sorted(models), timeout=20, what=f"{gw} serves {models}")
        wait_condition(api, "AIGateway", ns, gw, "Progressing", "True", timeout=10)
    # Exactly one of each child per gateway, none orphaned (every one owned by a live gateway).
    uids = {api.get("AIGateway", ns, gw)["metadata"]["uid"] for gw in gateways}
    for kind in CHILDREN:
        objs = [o for o in api.list(kind, ns) if o["metadata"].get("labels", {}).get("aimm.io/gateway")]
        assert len(objs) == len(gateways), (kind, [o["metadata"]["name"] for o in objs])
        for o in objs:
            refs = o["metadata"].get("ownerReferences") or []
            assert len(refs) == 1 and refs[0]["uid"] in uids, (kind, o["metadata"]["name"], refs)


def test_kill_mid_reconcile_and_restart_converges(api: Api, running: OperatorProcess, ns: str) -> None:
    models = [f"m{i}" for i in range(12)]
    for m in models[:6]:
        api.apply(model(ns, m))
    api.apply(gateway(ns, "a"))
    api.apply(gateway(ns, "b"))
    api.apply(policy(ns, "rp", [route("smart", *models[:6])]))
    # Kill -9 while the operator is busy with the burst.
    time.sleep(0.3)
    running.kill()
    # Changes while it is down: more models, one deleted, one gateway deleted and recreated.
    for m in models[6:]:
        api.apply(model(ns, m))
    api.delete("AIModel", ns, "m0")
    running.start()
    expected = models[1:]
    assert_converged(api, ns, ["a", "b"], expected)

    # Again, harder: kill during a second burst, and restart at once.
    for m in ("x1", "x2", "x3"):
        api.apply(model(ns, m))
    running.kill()
    running.start()
    assert_converged(api, ns, ["a", "b"], [*expected, "x1", "x2", "x3"])


def test_deleting_gateway_while_operator_down_is_finished_after_restart(
    api: Api, running: OperatorProcess, ns: str
) -> None:
    api.apply(model(ns, "m"))
    api.apply(gateway(ns, "gone"))
    wait_for(lambda: api.get("Deployment", ns, "gone"), what="children")
    wait_for(lambda: "aimm.io/finalizer" in (api.get("AIGateway", ns, "gone")["metadata"].get("finalizers") or []))
    running.kill()
    api.delete("AIGateway", ns, "gone")
    assert api.get("AIGateway", ns, "gone") is not None  # held by our finalizer while we are down
    running.start()
    wait_for(lambda: api.get("AIGateway", ns, "gone") is None, timeout=20, what="finalizer released after restart")
    for kind in CHILDREN:
        wait_for(
            lambda kind=kind: (
                not [o for o in api.list(kind, ns) if o["metadata"].get("labels", {}).get("aimm.io/gateway") == "gone"]
            ),
            timeout=30,
            what=f"{kind} collected",
        )


def test_conflicts_are_retried_not_fatal(api: Api, running: OperatorProcess, proxy: FaultProxy, ns: str) -> None:
    api.apply(model(ns, "m1"))
    api.apply(gateway(ns, "gw"))
    wait_for(lambda: served_models(api, ns, "gw") == ["m1"], what="initial config")

    # The next three writes of this ConfigMap and two of the gateway status get 409 Conflict.
    cm_fault = proxy.inject("PATCH", rf"/namespaces/{ns}/configmaps/gw-config$", 409, times=3)
    st_fault = proxy.inject("PATCH", rf"/namespaces/{ns}/aigateways/gw/status$", 409, times=2)
    api.apply(model(ns, "m2"))
    wait_for(lambda: served_models(api, ns, "gw") == ["m1", "m2"], timeout=10, what="config after conflicts")
    assert cm_fault.hits == 3
    wait_for(lambda: st_fault.hits == 2, timeout=10, what="status conflicts hit")
    assert running.alive()
    # A conflict storm longer than the client's own retries: kopf retries the handler; still converges.
    storm = proxy.inject("PATCH", rf"/namespaces/{ns}/configmaps/gw-config$", 409, times=8)
    api.apply(model(ns, "m3"))
    wait_for(lambda: served_models(api, ns, "gw") == ["m1", "m2", "m3"], timeout=20, what="config after storm")
    assert storm.hits == 8 and running.alive()
