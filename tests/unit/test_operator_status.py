"""Conditions and status of every kind (kstatus: Ready, Reconciling, Stalled, observedGeneration)."""

from __future__ import annotations

from aimm_operator.compile import Problem, compile_gateway
from aimm_operator.status import (
    GatewayOutcome,
    ModelPlacement,
    budget_status,
    condition,
    gateway_status,
    model_status,
    policy_status,
    rollout,
    stamp,
    transition_events,
)
from tests.unit.operator_fixtures import budget, gw, model, policy, route, snapshot

NOW = "2026-01-01T00:00:00Z"


def deployment(
    desired: int = 5,
    ready: int = 5,
    updated: int = 5,
    available: int = 5,
    gen: int = 2,
    observed: int = 2,
    reason: str = "NewReplicaSetAvailable",
) -> dict:
    return {
        "metadata": {"generation": gen},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": observed,
            "replicas": desired,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
        },
    }


def conds(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def outcome(dep: dict | None, **kw) -> tuple:  # type: ignore[no-untyped-def]
    snap = snapshot(gateways=[gw()], models=[model("m")])
    g = snap.gateways[0]
    c = compile_gateway(g, snap)
    kw.setdefault("config_applied", True)
    return g, GatewayOutcome(c, dep, None, kw.pop("monitoring", "NotInstalled"), "m", **kw)


def test_stamp_keeps_transition_time_while_status_holds() -> None:
    old = [{"type": "Ready", "status": "True", "lastTransitionTime": "then"}]
    same = stamp(old, [condition("Ready", True, "X", "", 1)], NOW)
    flipped = stamp(old, [condition("Ready", False, "X", "", 1)], NOW)
    assert same[0]["lastTransitionTime"] == "then" and flipped[0]["lastTransitionTime"] == NOW


def test_rollout_judgement() -> None:
    assert rollout(None).complete is False
    assert rollout(deployment()).complete
    assert not rollout(deployment(observed=1)).complete
    assert not rollout(deployment(updated=3)).complete
    assert not rollout(deployment(available=4)).complete
    assert rollout(deployment(reason="ProgressDeadlineExceeded")).failed


def test_gateway_ready_when_rolled_out() -> None:
    g, o = outcome(deployment())
    st = gateway_status(g, o, NOW)
    c = conds(st)
    assert c["Ready"] == ("True", "Available") and c["Reconciling"][0] == "False" and c["Stalled"][0] == "False"
    assert c["Progressing"] == ("False", "RolloutComplete") and c["Degraded"][0] == "False"
    assert c["Monitoring"] == ("False", "NotInstalled")
    assert st["observedGeneration"] == 1 and st["models"] == 1 and st["endpoint"] == "http://gw.ns.svc:80"
    assert all(x["observedGeneration"] == 1 for x in st["conditions"])


def test_gateway_progressing_stalled_and_failing() -> None:
    g, o = outcome(deployment(ready=1, available=1, updated=2))
    c = conds(gateway_status(g, o, NOW))
    assert c["Ready"][0] == "False" and c["Progressing"] == ("True", "RolloutInProgress")
    assert c["Reconciling"] == ("True", "RolloutInProgress")
    g, o = outcome(deployment(reason="ProgressDeadlineExceeded", available=0, ready=0))
    c = conds(gateway_status(g, o, NOW))
    assert c["Stalled"] == ("True", "ProgressDeadlineExceeded") and c["Degraded"][0] == "True"
    g, o = outcome(deployment(), apply_error="Service gw: 403 Forbidden")
    c = conds(gateway_status(g, o, NOW))
    assert c["Ready"] == ("False", "ApplyFailed") and c["Reconciling"] == ("True", "Retrying")


def test_gateway_invalid_config_keeps_previous_hash() -> None:
    g, o = outcome(deployment())
    bad = type(o.compiled)("gw", None, None, None, "", (), error="nope")
    g2 = type(g)(**{**g.__dict__, "status": {"configHash": "abc", "models": 3}})
    st = gateway_status(g2, GatewayOutcome(bad, deployment(), None, "Disabled", ""), NOW)
    assert conds(st)["Stalled"] == ("True", "ConfigInvalid") and st["configHash"] == "abc" and st["models"] == 3


def test_model_policy_budget_status() -> None:
    snap = snapshot(models=[model("m")], policies=[policy("p", [route("r", "m")])], budgets=[budget("b")])
    m, p, b = snap.models[0], snap.policies[0], snap.budgets[0]
    assert conds(model_status(m, ModelPlacement(applied=["gw"]), None, NOW))["Ready"] == ("True", "Accepted")
    assert conds(model_status(m, ModelPlacement(), None, NOW))["Ready"] == ("False", "NotSelected")
    loading = model_status(m, ModelPlacement(applied=["gw"], unloaded=["1 of 3 pods of AIGateway gw"]), None, NOW)
    assert conds(loading)["Ready"] == ("False", "ConfigNotLoaded")
    assert conds(loading)["Reconciling"] == ("True", "ConfigLoading") and conds(loading)["Stalled"][0] == "False"
    assert "1 of 3 pods of AIGateway gw" in loading["conditions"][0]["message"] and loading["gateways"] == ["gw"]
    assert conds(model_status(m, ModelPlacement(broken=["gw"]), None, NOW))["Ready"] == (
        "False",
        "GatewayConfigInvalid",
    )
    bad = Problem("AIModel", "m", "Stalled", "InvalidSpec", "x")
    assert conds(model_status(m, ModelPlacement(), bad, NOW))["Stalled"] == ("True", "InvalidSpec")

    st = policy_status(p, ["ghost"], [], ["gw"], NOW)
    assert conds(st)["ResolvedRefs"] == ("False", "AIModelNotFound") and "'ghost'" in st["conditions"][1]["message"]
    assert conds(st)["Ready"] == ("False", "UnresolvedRefs") and (st["routes"], st["targets"]) == (1, 1)
    assert conds(policy_status(p, [], [], ["gw"], NOW))["Ready"] == ("True", "Accepted")
    conflict = Problem("RoutingPolicy", "p", "Ready", "RouteConflict", "dup")
    assert conds(policy_status(p, [], [conflict], ["gw"], NOW))["Ready"] == ("False", "RouteConflict")

    assert conds(budget_status(b, None, [], ["gw"], NOW))["Ready"] == ("True", "Accepted")
    tz = Problem("CostBudget", "b", "Stalled", "InvalidTimeZone", "bad tz")
    assert conds(budget_status(b, tz, [], [], NOW))["Stalled"] == ("True", "InvalidTimeZone")
    ref = Problem("CostBudget", "b", "ResolvedRefs", "GatewayNotFound", "no gw")
    assert conds(budget_status(b, ref, [], [], NOW))["ResolvedRefs"] == ("False", "GatewayNotFound")


def test_transition_events() -> None:
    first_ok = [condition("Ready", True, "Available", "", 1)]
    assert [(e.type, e.reason) for e in transition_events([], first_ok)] == [("Normal", "Available")]
    assert transition_events([], [condition("Stalled", False, "Valid", "", 1)]) == []
    ev = transition_events(first_ok, [condition("Ready", False, "NoPodsAvailable", "0 ready", 1)])
    assert [(e.type, e.reason) for e in ev] == [("Warning", "NoPodsAvailable")]
    ev = transition_events([], [condition("Stalled", True, "ConfigInvalid", "x", 1)])
    assert [(e.type, e.reason) for e in ev] == [("Warning", "ConfigInvalid")]
    assert transition_events(first_ok, first_ok) == []
