"""Status and conditions of every kind, computed from a reconcile's results (pure).

Conditions follow the Kubernetes API conventions and kstatus: every object gets `Ready`,
`Reconciling` and `Stalled`, `observedGeneration` at top level and on each condition, and
`lastTransitionTime` that only moves when a condition's status changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aimm_operator.compile import Compiled, Problem
from aimm_operator.objects import Budget, Gateway, Model, Policy

Cond = dict[str, Any]
MonitoringState = Literal["Applied", "NotInstalled", "Disabled"]


def condition(ctype: str, status: bool | str, reason: str, message: str, generation: int) -> Cond:
    value = status if isinstance(status, str) else ("True" if status else "False")
    return {
        "type": ctype,
        "status": value,
        "reason": reason,
        "message": message[:32768],
        "observedGeneration": generation,
    }


def stamp(existing: Iterable[Mapping[str, Any]], new: Sequence[Cond], now: str) -> list[Cond]:
    """Give each new condition its lastTransitionTime: kept when its status did not change."""
    old = {c.get("type"): c for c in existing}
    out = []
    for cond in new:
        prev = old.get(cond["type"])
        if prev is not None and prev.get("status") == cond["status"] and prev.get("lastTransitionTime"):
            ltt = prev["lastTransitionTime"]
        else:
            ltt = now
        out.append({**cond, "lastTransitionTime": ltt})
    return out


def find(conditions: Iterable[Mapping[str, Any]], ctype: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == ctype), None)


def is_true(conditions: Iterable[Mapping[str, Any]], ctype: str) -> bool:
    c = find(conditions, ctype)
    return c is not None and c.get("status") == "True"


def _messages(problems: Iterable[Problem]) -> str:
    seen: list[str] = []
    for p in problems:
        if p.message not in seen:
            seen.append(p.message)
    return "; ".join(seen)


def _first_reason(problems: Sequence[Problem]) -> str:
    return problems[0].reason


# ------------------------------------------------------------------------------ AIGateway
@dataclass(frozen=True)
class Rollout:
    """The gateway Deployment's progress, as `kubectl rollout status` judges it."""

    replicas: int
    ready: int
    updated: int
    available: int
    complete: bool
    failed: bool
    message: str


def rollout(deployment: Mapping[str, Any] | None) -> Rollout:
    if not deployment:
        return Rollout(0, 0, 0, 0, False, False, "Deployment not created yet")
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    st = deployment.get("status") or {}
    desired = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    replicas = int(st.get("replicas") or 0)
    ready = int(st.get("readyReplicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    conds = st.get("conditions") or []
    progressing = find(conds, "Progressing")
    failed = bool(progressing and progressing.get("reason") == "ProgressDeadlineExceeded")
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        msg, complete = "waiting for the Deployment controller to observe the new spec", False
    elif updated < desired:
        msg, complete = f"{updated} of {desired} pods updated", False
    elif replicas > updated:
        msg, complete = f"{replicas - updated} old pods pending termination", False
    elif available < updated:
        msg, complete = f"{available} of {updated} updated pods available", False
    else:
        msg, complete = f"{available} of {desired} pods available", True
    if failed:
        detail = progressing.get("message", "") if progressing else ""
        msg = f"rollout stuck: {detail or 'progress deadline exceeded'}"
    return Rollout(replicas, ready, updated, available, complete, failed, msg)


def endpoint(gateway: Gateway, service: Mapping[str, Any] | None) -> str | None:
    if gateway.spec is None:
        return None
    port = gateway.spec.service.port
    if service:
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            host = ingress[0].get("hostname") or ingress[0].get("ip")
            if host:
                return f"http://{host}:{port}"
    return f"http://{gateway.name}.{gateway.namespace}.svc:{port}"


@dataclass(frozen=True)
class GatewayOutcome:
    """What a reconcile of one gateway achieved."""

    compiled: Compiled
    deployment: Mapping[str, Any] | None
    service: Mapping[str, Any] | None
    monitoring: MonitoringState
    monitoring_message: str
    apply_error: str | None = None
    config_replicas: int | None = None


def gateway_status(gateway: Gateway, outcome: GatewayOutcome, now: str) -> dict[str, Any]:
    gen = gateway.generation
    compiled = outcome.compiled
    previous = gateway.status
    refs = [p for p in compiled.problems if p.kind == "AIGateway" and p.condition == "ResolvedRefs"]
    ro = rollout(outcome.deployment)
    conds: list[Cond] = []

    if refs:
        conds.append(condition("ResolvedRefs", False, _first_reason(refs), _messages(refs), gen))
    else:
        conds.append(condition("ResolvedRefs", True, "Resolved", "all references resolved", gen))
    conds.append(
        condition("Monitoring", outcome.monitoring == "Applied", outcome.monitoring, outcome.monitoring_message, gen)
    )

    stalled_reason = None
    if gateway.spec is None:
        stalled_reason, stalled_msg = "InvalidSpec", gateway.spec_error or "spec does not parse"
    elif not compiled.ok:
        stalled_reason, stalled_msg = "ConfigInvalid", f"config not updated: {compiled.error}"
    elif ro.failed:
        stalled_reason, stalled_msg = "ProgressDeadlineExceeded", ro.message
    if stalled_reason:
        conds.append(condition("Stalled", True, stalled_reason, stalled_msg, gen))
    else:
        conds.append(condition("Stalled", False, "Reconciled", "the spec can be reconciled", gen))

    progressing = compiled.ok and outcome.apply_error is None and not ro.complete and not ro.failed
    if progressing:
        conds.append(condition("Progressing", True, "RolloutInProgress", ro.message, gen))
    elif outcome.apply_error is not None:
        conds.append(condition("Progressing", False, "ApplyFailed", outcome.apply_error, gen))
    else:
        conds.append(condition("Progressing", False, "RolloutComplete" if ro.complete else "Stopped", ro.message, gen))

    degraded = []
    if stalled_reason:
        degraded.append((stalled_reason, stalled_msg))
    if outcome.apply_error is not None:
        degraded.append(("ApplyFailed", outcome.apply_error))
    if refs:
        degraded.append(("UnresolvedRefs", _messages(refs)))
    if ro.complete and ro.ready < ro.replicas:
        degraded.append(("PodsNotReady", f"{ro.ready} of {ro.replicas} pods ready"))
    if degraded:
        conds.append(condition("Degraded", True, degraded[0][0], "; ".join(m for _, m in degraded), gen))
    else:
        conds.append(condition("Degraded", False, "Healthy", "no problems", gen))

    if stalled_reason:
        ready = condition("Ready", False, stalled_reason, stalled_msg, gen)
    elif outcome.apply_error is not None:
        ready = condition("Ready", False, "ApplyFailed", outcome.apply_error, gen)
    elif not ro.complete:
        ready = condition("Ready", False, "RolloutInProgress", ro.message, gen)
    elif ro.available < 1:
        ready = condition("Ready", False, "NoPodsAvailable", ro.message, gen)
    else:
        ready = condition("Ready", True, "Available", ro.message, gen)
    conds.insert(0, ready)

    reconciling = progressing or outcome.apply_error is not None
    conds.append(
        condition(
            "Reconciling",
            reconciling,
            "RolloutInProgress" if progressing else ("Retrying" if reconciling else "Reconciled"),
            ro.message if progressing else (outcome.apply_error or "up to date"),
            gen,
        )
    )

    status: dict[str, Any] = {
        "observedGeneration": gen,
        "conditions": stamp(gateway.conditions, conds, now),
        "replicas": ro.replicas,
        "readyReplicas": ro.ready,
        "updatedReplicas": ro.updated,
    }
    ep = endpoint(gateway, outcome.service)
    if ep:
        status["endpoint"] = ep
    if compiled.ok:
        status.update(
            configHash=compiled.config_hash,
            models=len(compiled.models),
            routes=len(compiled.routes),
            budgets=len(compiled.budgets),
        )
    else:
        for key in ("configHash", "models", "routes", "budgets"):
            if previous.get(key) is not None:
                status[key] = previous[key]
    if outcome.config_replicas is not None:
        status["configReplicas"] = outcome.config_replicas
    return status


# ------------------------------------------------------------------------------ AIModel
def model_status(
    model: Model,
    gateways: Sequence[str],
    problem: Problem | None,
    broken_gateways: Sequence[str],
    now: str,
) -> dict[str, Any]:
    """Acceptance of an AIModel: `gateways` include it; `broken_gateways` select it but failed to compile."""
    gen = model.generation
    conds: list[Cond] = []
    if problem is not None:
        conds.append(condition("Ready", False, problem.reason, problem.message, gen))
        conds.append(condition("Stalled", True, problem.reason, problem.message, gen))
    else:
        if gateways:
            conds.append(
                condition("Ready", True, "Accepted", f"in the config of AIGateway(s) {', '.join(gateways)}", gen)
            )
        elif broken_gateways:
            conds.append(
                condition(
                    "Ready",
                    False,
                    "GatewayConfigInvalid",
                    f"AIGateway(s) {', '.join(broken_gateways)} select this model but their config is invalid",
                    gen,
                )
            )
        else:
            conds.append(
                condition("Ready", False, "NotSelected", "no AIGateway in this namespace selects this model", gen)
            )
        conds.append(condition("Stalled", False, "Valid", "the spec is valid", gen))
    conds.append(condition("Reconciling", False, "Reconciled", "up to date", gen))
    return {
        "observedGeneration": gen,
        "conditions": stamp(model.conditions, conds, now),
        "gateways": list(gateways),
    }


# ------------------------------------------------------------------------------ RoutingPolicy
def policy_status(
    policy: Policy,
    missing_models: Sequence[str],
    problems: Sequence[Problem],
    gateways: Sequence[str],
    now: str,
) -> dict[str, Any]:
    gen = policy.generation
    conds: list[Cond] = []
    status: dict[str, Any] = {"observedGeneration": gen, "gateways": list(gateways)}
    if policy.spec is None:
        msg = policy.spec_error or "spec does not parse"
        conds += [
            condition("Ready", False, "InvalidSpec", msg, gen),
            condition("Stalled", True, "InvalidSpec", msg, gen),
        ]
    else:
        spec = policy.spec
        targets = {t.model for r in spec.routes for t in r.targets}
        status.update(routes=len(spec.routes), targets=len(targets))
        refs = list(problems_of(problems, "ResolvedRefs"))
        if missing_models:
            names = ", ".join(repr(n) for n in missing_models)
            refs.insert(
                0,
                Problem(
                    "RoutingPolicy",
                    policy.name,
                    "ResolvedRefs",
                    "AIModelNotFound",
                    f"AIModel {names} not found in namespace {policy.namespace}",
                ),
            )
        if refs:
            conds.append(condition("ResolvedRefs", False, refs[0].reason, _messages(refs), gen))
        else:
            conds.append(condition("ResolvedRefs", True, "Resolved", "every referenced AIModel exists", gen))
        others = list(problems_of(problems, "Ready"))
        if refs:
            conds.insert(0, condition("Ready", False, "UnresolvedRefs", _messages(refs + others), gen))
        elif others:
            conds.insert(0, condition("Ready", False, others[0].reason, _messages(others), gen))
        elif not gateways:
            conds.insert(
                0,
                condition("Ready", False, "NotSelected", "no AIGateway in this namespace uses this policy", gen),
            )
        else:
            conds.insert(
                0,
                condition("Ready", True, "Accepted", f"routes served by AIGateway(s) {', '.join(gateways)}", gen),
            )
        conds.append(condition("Stalled", False, "Valid", "the spec is valid", gen))
    conds.append(condition("Reconciling", False, "Reconciled", "up to date", gen))
    status["conditions"] = stamp(policy.conditions, conds, now)
    return status


def problems_of(problems: Iterable[Problem], ctype: str) -> Iterable[Problem]:
    return (p for p in problems if p.condition == ctype)


# ------------------------------------------------------------------------------ CostBudget
def budget_status(
    budget: Budget,
    problem: Problem | None,
    problems: Sequence[Problem],
    gateways: Sequence[str],
    now: str,
) -> dict[str, Any]:
    gen = budget.generation
    conds: list[Cond] = []
    if problem is not None and problem.condition == "Stalled":
        conds += [
            condition("Ready", False, problem.reason, problem.message, gen),
            condition("Stalled", True, problem.reason, problem.message, gen),
            condition("ResolvedRefs", "Unknown", problem.reason, "not checked: the spec is invalid", gen),
        ]
    else:
        refs = ([problem] if problem is not None else []) + list(problems_of(problems, "ResolvedRefs"))
        if refs:
            conds.append(condition("ResolvedRefs", False, refs[0].reason, _messages(refs), gen))
        else:
            conds.append(condition("ResolvedRefs", True, "Resolved", "all references resolved", gen))
        if refs:
            conds.insert(0, condition("Ready", False, "UnresolvedRefs", _messages(refs), gen))
        elif not gateways:
            conds.insert(
                0,
                condition("Ready", False, "NotSelected", "no AIGateway's models are in this budget's scope", gen),
            )
        else:
            conds.insert(
                0,
                condition("Ready", True, "Accepted", f"enforced by AIGateway(s) {', '.join(gateways)}", gen),
            )
        conds.append(condition("Stalled", False, "Valid", "the spec is valid", gen))
    conds.append(condition("Reconciling", False, "Reconciled", "up to date", gen))
    return {
        "observedGeneration": gen,
        "conditions": stamp(budget.conditions, conds, now),
        "gateways": list(gateways),
    }


# ------------------------------------------------------------------------------ Events
@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


_WATCHED = ("Ready", "Stalled", "ResolvedRefs", "Degraded", "Monitoring")


def transition_events(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[EventSpec]:
    """Events for notable condition transitions (first appearance counts as a transition)."""
    before = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        ctype = cond.get("type")
        if ctype not in _WATCHED:
            continue
        prev = before.get(ctype)
        if prev is not None and prev.get("status") == cond.get("status") and prev.get("reason") == cond.get("reason"):
            continue
        status = cond.get("status")
        good = (status == "True") != (ctype in ("Stalled", "Degraded"))
        if prev is None and good:
            continue  # a healthy first state is not news
        if ctype == "Monitoring" and cond.get("reason") == "Disabled":
            continue
        kind: Literal["Normal", "Warning"] = "Normal" if good else "Warning"
        reason = cond.get("reason") or ctype
        out.append(EventSpec(kind, str(reason), f"{ctype}={status}: {cond.get('message', '')}"))
    return out
