"""Regression tests for the operator fixes from the install trial (issue 13) whose logic is pure."""

from __future__ import annotations

from typing import Any

import httpx
import yaml

from aimm_operator import render
from aimm_operator.compile import compile_gateway
from aimm_operator.crd.generate import KINDS, crd_manifest
from aimm_operator.handlers import OperatorContext, OperatorSettings, backoff_delay
from aimm_operator.kube import Credentials, Kube, KubeError
from aimm_operator.reconcile import CONFIGMAP_BUDGET, config_event, config_map_error
from aimm_operator.stats import StatsCache
from aimm_operator.status import (
    GatewayOutcome,
    ModelPlacement,
    budget_status,
    condition,
    gateway_status,
    model_status,
    policy_status,
    transition_events,
)
from tests.unit.operator_fixtures import body, budget, gw, model, policy, route, snapshot

NOW = "2026-01-01T00:00:00Z"
ROLLED_OUT = {
    "metadata": {"generation": 1},
    "spec": {"replicas": 1},
    "status": {
        "observedGeneration": 1,
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
    },
}


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def kstatus_current(status: dict[str, Any]) -> bool:
    """kstatus' rule for custom resources: Current unless Reconciling or Stalled is True."""
    c = conds(status)
    return c.get("Reconciling", ("False",))[0] != "True" and c.get("Stalled", ("False",))[0] != "True"


def aged(b: dict[str, Any], created: str, served: list[str] | None = None) -> dict[str, Any]:
    b["metadata"]["creationTimestamp"] = created
    if served is not None:
        b["status"] = {"servedRoutes": served}
    return b


# ------------------------------------------------------------------------------ (a) route ownership
def test_a_newer_policy_never_takes_a_route_over_by_name_order() -> None:
    old = aged(policy("z-old", [route("smart", "m")]), "2026-01-01T00:00:00Z")
    new = aged(policy("a-new", [route("smart", "m")]), "2026-02-01T00:00:00Z")
    snap = snapshot(models=[model("m")], policies=[old, new])
    c = compile_gateway(snap.gateways[0], snap)
    assert c.route_owners == (("smart", "z-old"),)
    (problem,) = [p for p in c.problems if p.name == "a-new"]
    assert problem.reason == "RouteConflict" and "'z-old'" in problem.message


def test_the_current_owner_keeps_its_route_even_against_an_older_policy() -> None:
    older = aged(policy("a-older", [route("smart", "m")]), "2025-01-01T00:00:00Z")  # added the route later
    owner = aged(policy("b-owner", [route("smart", "m")]), "2026-01-01T00:00:00Z", served=["smart"])
    snap = snapshot(models=[model("m")], policies=[older, owner])
    c = compile_gateway(snap.gateways[0], snap)
    assert c.route_owners == (("smart", "b-owner"),)
    st = policy_status(snap.policies[0], [], [p for p in c.problems if p.name == "a-older"], [], NOW)
    assert conds(st)["Ready"] == ("False", "RouteConflict") and not kstatus_current(st)


# ------------------------------------------------------------------------------ (d) + kstatus
def test_default_policy_with_a_deleted_model_degrades_the_gateway_and_is_not_current() -> None:
    snap = snapshot(
        gateways=[gw(routing={"defaultPolicy": "rp"})],
        models=[model("m")],
        policies=[policy("rp", [route("smart", "m", "deleted")])],
    )
    c = compile_gateway(snap.gateways[0], snap)
    assert c.ok and c.routes == ("smart",)  # the rest keeps serving
    st = gateway_status(snap.gateways[0], GatewayOutcome(c, ROLLED_OUT, None, "Disabled", "", config_applied=True), NOW)
    cs = conds(st)
    assert cs["Degraded"] == ("True", "UnresolvedRefs") and cs["ResolvedRefs"] == ("False", "DefaultPolicyUnresolved")
    assert "'deleted'" in next(x["message"] for x in st["conditions"] if x["type"] == "Degraded")
    assert not kstatus_current(st) and cs["Ready"][0] == "False"


def test_policy_with_missing_models_is_not_current() -> None:
    snap = snapshot(models=[model("m")], policies=[policy("rp", [route("smart", "m", "ghost")])])
    st = policy_status(snap.policies[0], ["ghost"], [], ["gw"], NOW)
    assert conds(st)["Stalled"] == ("True", "UnresolvedRefs") and not kstatus_current(st)
    healthy = policy_status(snap.policies[0], [], [], ["gw"], NOW)
    assert kstatus_current(healthy) and conds(healthy)["Ready"] == ("True", "Accepted")


# ------------------------------------------------------------------------------ (b) size, failed applies
def test_oversized_config_map_is_refused_before_the_api_server() -> None:
    assert config_map_error({"data": {"config.yaml": "x" * 100}}) is None
    msg = config_map_error({"data": {"config.yaml": "x" * (CONFIGMAP_BUDGET + 1)}})
    assert msg is not None and str(CONFIGMAP_BUDGET) in msg


def test_no_config_event_and_no_new_hash_for_a_failed_apply() -> None:
    snap = snapshot(models=[model("m")])
    g = snap.gateways[0]
    c = compile_gateway(g, snap)
    failed = GatewayOutcome(c, ROLLED_OUT, None, "Disabled", "", apply_error="ConfigMap: too big", apply_permanent=True)
    assert config_event(g, failed) is None
    st = gateway_status(g, failed, NOW)
    assert "configHash" not in st and conds(st)["Stalled"] == ("True", "ApplyRefused")
    ok = GatewayOutcome(c, ROLLED_OUT, None, "Disabled", "", config_applied=True)
    ev = config_event(g, ok)
    assert ev is not None and ev.reason == "ConfigCreated"


def test_model_is_ready_only_once_its_config_is_applied() -> None:
    m = snapshot(models=[model("m")]).models[0]
    refused = model_status(m, ModelPlacement(unapplied=["gw"], unapplied_permanent=True), None, NOW)
    assert conds(refused)["Ready"] == ("False", "ConfigNotApplied") and conds(refused)["Stalled"][0] == "True"
    retrying = model_status(m, ModelPlacement(unapplied=["gw"]), None, NOW)
    assert conds(retrying)["Reconciling"] == ("True", "Retrying") and retrying["gateways"] == []
    assert conds(model_status(m, ModelPlacement(applied=["gw"]), None, NOW))["Ready"] == ("True", "Accepted")


def test_permanent_errors_back_off_exponentially() -> None:
    assert KubeError(422, "Invalid", "x").permanent and KubeError(413, "TooLarge", "x").permanent
    assert not KubeError(409, "Conflict", "x").permanent and not KubeError(503, "", "x").permanent
    s = OperatorSettings(Credentials(server="https://x"), retry_delay_s=1, max_retry_delay_s=60)
    assert [backoff_delay(s, n) for n in (1, 2, 3, 4, 7, 20)] == [1, 2, 4, 8, 60, 60]


def test_maps_and_lists_are_bounded_in_the_crds() -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        out = []
        if schema.get("type") == "array" and "maxItems" not in schema:
            out.append(path)
        if "additionalProperties" in schema and "maxProperties" not in schema:
            out.append(path)
        for key, sub in (schema.get("properties") or {}).items():
            out += walk(sub, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                out += walk(schema[key], f"{path}[]")
        return out

    for kind in KINDS:
        spec = crd_manifest(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert walk(spec, kind.kind) == []
    aimodel = next(k for k in KINDS if k.kind == "AIModel")
    headers = crd_manifest(aimodel)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    headers = headers["properties"]["headers"]
    assert headers["maxProperties"] == 16 and headers["additionalProperties"]["maxLength"] == 1024


# ------------------------------------------------------------------------------ budgets, redis, database
def test_budget_status_names_the_enforced_action() -> None:
    snap = snapshot(budgets=[budget("b", action="block")])
    msg = next(
        c["message"]
        for c in budget_status(snap.budgets[0], None, [], ["gw"], NOW)["conditions"]
        if c["type"] == "Ready"
    )
    assert msg == "enforced (action 'block') by AIGateway(s) gw"


def test_redis_and_database_are_wired_into_state_and_store_and_roll_the_pods() -> None:
    plain = snapshot()
    backed = snapshot(
        gateways=[
            body(
                "AIGateway",
                "gw",
                {
                    "redis": {"urlSecretRef": {"name": "r", "key": "url"}},
                    "database": {"urlSecretRef": {"name": "d", "key": "dsn"}},
                },
            )
        ]
    )
    c0 = compile_gateway(plain.gateways[0], plain)
    c1 = compile_gateway(backed.gateways[0], backed)
    assert c0.config is not None and c1.config is not None
    assert c0.config.state.redis is None and c0.config.store is None
    assert c1.config.state.redis is not None and c1.config.state.redis.url.env == "AIMM_REDIS_URL"
    assert c1.config.store is not None and c1.config.store.postgres is not None
    assert c1.config.store.postgres.dsn.env == "AIMM_DATABASE_URL"
    assert c0.restart_hash != c1.restart_hash


# ------------------------------------------------------------------------------ placement (issue 13 item 4)
def test_placement_and_hpa_behavior_reach_the_children() -> None:
    spec = {
        "placement": {
            "nodeSelector": {"pool": "ai"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
            "podAnnotations": {"a": "1"},
            "podLabels": {"team": "ml", "app.kubernetes.io/name": "mine"},
            "imagePullSecrets": ["regcred"],
            "priorityClassName": "high",
            "serviceAccountAnnotations": {"iam": "role"},
        },
        "autoscaling": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}},
    }
    snap = snapshot(gateways=[body("AIGateway", "gw", spec)])
    g = snap.gateways[0]
    c = compile_gateway(g, snap)
    children = {m["kind"]: m for m in render.children(g, c, frozenset())}
    tpl = children["Deployment"]["spec"]["template"]
    pod = tpl["spec"]
    assert pod["nodeSelector"] == {"pool": "ai"} and pod["tolerations"][0]["key"] == "gpu"
    assert pod["affinity"]["nodeAffinity"] and pod["topologySpreadConstraints"][0]["topologyKey"] == "zone"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["priorityClassName"] == "high"
    assert tpl["metadata"]["labels"]["team"] == "ml"
    assert tpl["metadata"]["labels"]["app.kubernetes.io/name"] == render.APP_NAME  # the selector's label wins
    assert tpl["metadata"]["annotations"]["a"] == "1"
    assert children["ServiceAccount"]["metadata"]["annotations"] == {"iam": "role"}
    assert children["HorizontalPodAutoscaler"]["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}
    yaml.safe_dump(children)  # plain data


# ------------------------------------------------------------------------------ quiet at scale (issue 15)
def test_only_spec_label_and_deletion_changes_trigger_a_reconcile() -> None:
    creds = Credentials(server="https://x")
    ctx = OperatorContext(OperatorSettings(creds), Kube(creds), httpx.AsyncClient(), StatsCache(30))
    b = body("AIModel", "m", {"provider": "mock", "model": "m"})
    assert ctx.notice(None, b)  # first sight (initial listing): reconcile
    assert not ctx.notice("MODIFIED", {**b, "status": {"requestsTotal": 5}})  # a status write: nothing
    b["metadata"]["generation"] = 2
    assert ctx.notice("MODIFIED", b) and not ctx.notice("MODIFIED", b)
    b["metadata"]["labels"] = {"team": "x"}
    assert ctx.notice("MODIFIED", b)
    assert ctx.notice("DELETED", b) and ctx.seen == {}


def test_waiting_for_a_gateway_at_creation_is_not_an_event() -> None:
    waiting = [condition("Ready", False, "NotSelected", "no AIGateway", 1)]
    assert transition_events([], waiting) == []
    ready = [condition("Ready", True, "Accepted", "in gw", 1)]
    assert [e.reason for e in transition_events(waiting, ready)] == ["Accepted"]
    assert [e.type for e in transition_events(ready, waiting)] == ["Warning"]  # losing it still is
