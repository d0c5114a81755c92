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
    apply_permanent: bool = False  # the API server refused the apply (4xx): retrying won't help
    config_applied: bool = False  # the compiled config is in the ConfigMap


@dataclass(frozen=True)
class _Verdict:
    """Why an object cannot reach its desired state without a change (Stalled), if it cannot."""

    reason: str | None = None
    message: str = ""


def _gateway_stall(gateway: Gateway, outcome: GatewayOutcome, ro: Rollout, refs: Sequence[Problem]) -> _Verdict:
    compiled = outcome.compiled
    if gateway.spec is None:
        return _Verdict("InvalidSpec", gateway.spec_error or "spec does not parse")
    if not compiled.ok:
        return _Verdict("ConfigInvalid", f"config not updated: {compiled.error}")
    if outcome.apply_error is not None and outcome.apply_permanent:
        return _Verdict("ApplyRefused", outcome.apply_error)
    if ro.failed:
        return _Verdict("ProgressDeadlineExceeded", ro.message)
    if refs:
        return _Verdict("UnresolvedRefs", _messages(refs))
    return _Verdict()


def _gateway_progress(outcome: GatewayOutcome, ro: Rollout, stall: _Verdict, gen: int) -> list[Cond]:
    """Progressing and Reconciling: a rollout under way, or a transient apply failure being retried."""
    progressing = outcome.compiled.ok and outcome.apply_error is None and not ro.complete and not ro.failed
    if progressing:
        prog = condition("Progressing", True, "RolloutInProgress", ro.message, gen)
    elif outcome.apply_error is not None:
        prog = condition("Progressing", False, "ApplyFailed", outcome.apply_error, gen)
    else:
        prog = condition("Progressing", False, "RolloutComplete" if ro.complete else "Stopped", ro.message, gen)
    retrying = outcome.apply_error is not None and stall.reason is None
    if progressing:
        rec = condition("Reconciling", True, "RolloutInProgress", ro.message, gen)
    elif retrying:
        rec = condition("Reconciling", True, "Retrying", outcome.apply_error or "", gen)
    else:
        rec = condition("Reconciling", False, "Reconciled", "up to date", gen)
    return [prog, rec]


def _gateway_ready(outcome: GatewayOutcome, ro: Rollout, stall: _Verdict, gen: int) -> Cond:
    if stall.reason:
        return condition("Ready", False, stall.reason, stall.message, gen)
    if outcome.apply_error is not None:
        return condition("Ready", False, "ApplyFailed", outcome.apply_error, gen)
    if not ro.complete:
        return condition("Ready", False, "RolloutInProgress", ro.message, gen)
    if ro.available < 1:
        return condition("Ready", False, "NoPodsAvailable", ro.message, gen)
    return condition("Ready", True, "Available", ro.message, gen)


def _gateway_degraded(outcome: GatewayOutcome, ro: Rollout, stall: _Verdict, refs: Sequence[Problem], gen: int) -> Cond:
    degraded = []
    if stall.reason and stall.reason != "UnresolvedRefs":
        degraded.append((stall.reason, stall.message))
    if outcome.apply_error is not None and stall.reason != "ApplyRefused":
        degraded.append(("ApplyFailed", outcome.apply_error))
    if refs:
        degraded.append(("UnresolvedRefs", _messages(refs)))
    if ro.complete and ro.ready < ro.replicas:
        degraded.append(("PodsNotReady", f"{ro.ready} of {ro.replicas} pods ready"))
    if degraded:
        return condition("Degraded", True, degraded[0][0], "; ".join(m for _, m in degraded), gen)
    return condition("Degraded", False, "Healthy", "no problems", gen)


def gateway_status(gateway: Gateway, outcome: GatewayOutcome, now: str) -> dict[str, Any]:
    """kstatus: Stalled (Failed) on an invalid spec, a refused apply, a stuck rollout or unresolved
    references (the default policy's included); Reconciling (InProgress) while rolling out or retrying."""
    gen = gateway.generation
    compiled = outcome.compiled
    refs = [p for p in compiled.problems if p.kind == "AIGateway" and p.condition == "ResolvedRefs"]
    ro = rollout(outcome.deployment)
    stall = _gateway_stall(gateway, outcome, ro, refs)
    conds = [
        _gateway_ready(outcome, ro, stall, gen),
        condition("ResolvedRefs", False, _first_reason(refs), _messages(refs), gen)
        if refs
        else condition("ResolvedRefs", True, "Resolved", "all references resolved", gen),
        condition("Monitoring", outcome.monitoring == "Applied", outcome.monitoring, outcome.monitoring_message, gen),
        condition("Stalled", True, stall.reason, stall.message, gen)
        if stall.reason
        else condition("Stalled", False, "Reconciled", "the spec can be reconciled", gen),
        *_gateway_progress(outcome, ro, stall, gen),
        _gateway_degraded(outcome, ro, stall, refs, gen),
    ]
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
    if compiled.ok and outcome.config_applied:
        status.update(
            configHash=compiled.config_hash,
            models=len(compiled.models),
            routes=len(compiled.routes),
            budgets=len(compiled.budgets),
        )
    else:  # the config the pods have is still the last one applied
        for key in ("configHash", "models", "routes", "budgets"):
            if gateway.status.get(key) is not None:
                status[key] = gateway.status[key]
    if outcome.config_replicas is not None:
        status["configReplicas"] = outcome.config_replicas
    return status


# ------------------------------------------------------------------------------ AIModel
@dataclass(frozen=True)
class ModelPlacement:
    """Where an AIModel stands in the gateways selecting it."""

    applied: Sequence[str] = ()  # gateways whose applied config includes it
    broken: Sequence[str] = ()  # gateways selecting it whose config does not compile
    unapplied: Sequence[str] = ()  # gateways whose config includes it but could not be applied
    unapplied_permanent: bool = False  # ... because the API server refused it (no retry helps)
    unloaded: Sequence[str] = ()  # "k of n pods of AIGateway g": pods reporting a config without it


def _model_conditions(placement: ModelPlacement, gen: int) -> list[Cond]:
    """Ready only once a config containing the model was applied and, where pods report the config
    they serve, loaded by every one of them (kstatus: Stalled or Reconciling otherwise)."""
    p = placement
    if p.unapplied:
        msg = f"the config of AIGateway(s) {', '.join(p.unapplied)} that includes this model could not be applied"
        return [
            condition("Ready", False, "ConfigNotApplied", msg, gen),
            condition(
                "Stalled", p.unapplied_permanent, "ConfigNotApplied" if p.unapplied_permanent else "Valid", msg, gen
            ),
            condition(
                "Reconciling",
                not p.unapplied_permanent,
                "Retrying" if not p.unapplied_permanent else "Reconciled",
                msg,
                gen,
            ),
        ]
    if p.applied and p.unloaded:
        msg = f"in the applied config, not yet loaded: {'; '.join(p.unloaded)} serve it"
        return [
            condition("Ready", False, "ConfigNotLoaded", msg, gen),
            condition("Stalled", False, "Valid", "the spec is valid", gen),
            condition("Reconciling", True, "ConfigLoading", msg, gen),
        ]
    if p.applied:
        ready = condition("Ready", True, "Accepted", f"in the config of AIGateway(s) {', '.join(p.applied)}", gen)
    elif p.broken:
        msg = f"AIGateway(s) {', '.join(p.broken)} select this model but their config is invalid"
        return [
            condition("Ready", False, "GatewayConfigInvalid", msg, gen),
            condition("Stalled", True, "GatewayConfigInvalid", msg, gen),
            condition("Reconciling", False, "Reconciled", "up to date", gen),
        ]
    else:
        ready = condition("Ready", False, "NotSelected", "no AIGateway in this namespace selects this model", gen)
    return [
        ready,
        condition("Stalled", False, "Valid", "the spec is valid", gen),
        condition("Reconciling", False, "Reconciled", "up to date", gen),
    ]


def model_status(model: Model, placement: ModelPlacement, problem: Problem | None, now: str) -> dict[str, Any]:
    """Acceptance of an AIModel into the configs of the gateways that select it."""
    gen = model.generation
    if problem is not None:
        conds = [
            condition("Ready", False, problem.reason, problem.message, gen),
            condition("Stalled", True, problem.reason, problem.message, gen),
            condition("Reconciling", False, "Reconciled", "up to date", gen),
        ]
    else:
        conds = _model_conditions(placement, gen)
    return {
        "observedGeneration": gen,
        "conditions": stamp(model.conditions, conds, now),
        "gateways": list(placement.applied),
    }


# ------------------------------------------------------------------------------ RoutingPolicy
def _policy_conditions(
    policy: Policy, missing_models: Sequence[str], problems: Sequence[Problem], gateways: Sequence[str], gen: int
) -> list[Cond]:
    refs = list(problems_of(problems, "ResolvedRefs"))
    if missing_models:
        names = ", ".join(repr(n) for n in missing_models)
        msg = f"AIModel {names} not found in namespace {policy.namespace}"
        refs.insert(0, Problem("RoutingPolicy", policy.name, "ResolvedRefs", "AIModelNotFound", msg))
    if refs:
        resolved = condition("ResolvedRefs", False, refs[0].reason, _messages(refs), gen)
    else:
        resolved = condition("ResolvedRefs", True, "Resolved", "every referenced AIModel exists", gen)
    others = list(problems_of(problems, "Ready"))
    # kstatus: a policy that cannot be served as written is Stalled (Failed), never Current.
    if refs or others:
        reason = "UnresolvedRefs" if refs else others[0].reason
        msg = _messages(refs + others)
        return [condition("Ready", False, reason, msg, gen), resolved, condition("Stalled", True, reason, msg, gen)]
    if not gateways:
        ready = condition("Ready", False, "NotSelected", "no AIGateway in this namespace uses this policy", gen)
    else:
        ready = condition("Ready", True, "Accepted", f"routes served by AIGateway(s) {', '.join(gateways)}", gen)
    return [ready, resolved, condition("Stalled", False, "Valid", "the spec is valid", gen)]


def policy_status(
    policy: Policy,
    missing_models: Sequence[str],
    problems: Sequence[Problem],
    gateways: Sequence[str],
    now: str,
    served_routes: Sequence[str] = (),
) -> dict[str, Any]:
    """`servedRoutes` records which routes this policy owns: a later policy naming one gets RouteConflict."""
    gen = policy.generation
    status: dict[str, Any] = {"observedGeneration": gen, "gateways": list(gateways)}
    if policy.spec is None:
        msg = policy.spec_error or "spec does not parse"
        conds = [
            condition("Ready", False, "InvalidSpec", msg, gen),
            condition("Stalled", True, "InvalidSpec", msg, gen),
        ]
    else:
        targets = {t.model for r in policy.spec.routes for t in r.targets}
        status.update(routes=len(policy.spec.routes), targets=len(targets), servedRoutes=list(served_routes))
        conds = _policy_conditions(policy, missing_models, problems, gateways, gen)
    conds.append(condition("Reconciling", False, "Reconciled", "up to date", gen))
    status["conditions"] = stamp(policy.conditions, conds, now)
    return status


def problems_of(problems: Iterable[Problem], ctype: str) -> Iterable[Problem]:
    return (p for p in problems if p.condition == ctype)


# ------------------------------------------------------------------------------ CostBudget
def budget_role(budget: Budget, gateways: Sequence[str]) -> str:
    """What the gateways do with a budget (their budget stage enforces `action`)."""
    action = budget.spec.action if budget.spec is not None else "alert"
    return f"enforced (action {action!r}) by AIGateway(s) {', '.join(gateways)}"


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
            conds.append(condition("Stalled", True, "UnresolvedRefs", _messages(refs), gen))
        else:
            if not gateways:
                ready = condition(
                    "Ready", False, "NotSelected", "no AIGateway's models are in this budget's scope", gen
                )
            else:
                ready = condition("Ready", True, "Accepted", budget_role(budget, gateways), gen)
            conds.insert(0, ready)
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
_WAITING = frozenset({"NotSelected"})


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
        if prev is None and good and ctype != "Ready":
            continue  # a healthy first state is not news, except becoming Ready (an object's "I'm up")
        if prev is None and cond.get("reason") in _WAITING:
            continue  # nor is waiting for a gateway at creation (models applied before their gateway)
        if ctype == "Monitoring" and cond.get("reason") == "Disabled":
            continue
        kind: Literal["Normal", "Warning"] = "Normal" if good else "Warning"
        reason = cond.get("reason") or ctype
        out.append(EventSpec(kind, str(reason), f"{ctype}={status}: {cond.get('message', '')}"))
    return out
