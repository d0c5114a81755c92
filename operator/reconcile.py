"""One reconcile of a namespace, and one stats poll of a gateway: read, compute (pure), write.

`reconcile_namespace` reads every AIGateway, AIModel, RoutingPolicy and CostBudget of a
namespace, compiles each gateway's config, applies its children, and writes every object's
status. It is idempotent: create, resume and every change go through it, and running it twice
changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import httpx

from aimm_operator import render, viewer
from aimm_operator.apply import (
    MANAGER,
    STATS_MANAGER,
    apply,
    apply_status,
    delete,
    emit_event,
    hand_replicas_to_hpa,
)
from aimm_operator.budget import BUDGETS_PATH, budget_live_status, rfc3339
from aimm_operator.compile import (
    Compiled,
    Problem,
    budget_problem,
    compile_gateway,
    model_problem,
    policy_missing_models,
    viewer_secret_name,
)
from aimm_operator.crd.common import API_VERSION
from aimm_operator.events import EventSink
from aimm_operator.kube import Kube, KubeError
from aimm_operator.objects import (
    Budget,
    Gateway,
    Model,
    Obj,
    Policy,
    S,
    Snapshot,
    parse_budget,
    parse_gateway,
    parse_model,
)
from aimm_operator.podkick import kick_pods
from aimm_operator.stats import (
    STATS_PATH,
    Answer,
    GatewayStats,
    PollMemo,
    StatsCache,
    endpoints_from_slices,
    fetch_answers,
    live_changed,
    model_events,
    model_live_status,
)
from aimm_operator.status import (
    EventSpec,
    GatewayOutcome,
    ModelPlacement,
    MonitoringState,
    budget_status,
    find,
    gateway_status,
    model_status,
    policy_status,
    rollout,
    transition_events,
)
from aimm_operator.store import ObjectStore

log = logging.getLogger("aimm_operator.reconcile")

MONITORING_API = "monitoring.coreos.com/v1"
MONITORING_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})


class ReconcileError(Exception):
    """Some gateway could not be reconciled; the rest were. Raised after everything was tried."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def now_utc() -> datetime:
    return datetime.now(UTC)


def ref(obj: Obj[Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": obj.kind,
        "name": obj.name,
        "namespace": obj.namespace,
        "uid": obj.uid,
    }


async def read_snapshot(kube: Kube, namespace: str) -> Snapshot:
    gateways, models, policies, budgets = await asyncio.gather(
        kube.list("AIGateway", namespace),
        kube.list("AIModel", namespace),
        kube.list("RoutingPolicy", namespace),
        kube.list("CostBudget", namespace),
    )
    return Snapshot.from_bodies(namespace, gateways, models, policies, budgets)


def monitoring_state(gw: Gateway, served: frozenset[str]) -> tuple[MonitoringState, str]:
    assert gw.spec is not None
    wanted = {
        k
        for k, on in (
            ("ServiceMonitor", gw.spec.monitoring.service_monitor),
            ("PrometheusRule", gw.spec.monitoring.prometheus_rule),
        )
        if on
    }
    if not wanted:
        return "Disabled", "ServiceMonitor and PrometheusRule are switched off"
    missing = sorted(wanted - served)
    if missing:
        return "NotInstalled", (
            f"{', '.join(missing)} not created: the {MONITORING_API} CRDs (Prometheus Operator) are not installed"
        )
    return "Applied", f"{', '.join(sorted(wanted))} applied"


CONFIGMAP_LIMIT = 1024 * 1024  # bytes the API server (etcd) accepts for one ConfigMap
CONFIGMAP_BUDGET = CONFIGMAP_LIMIT * 9 // 10  # refused before the server would, with room for metadata


def config_map_error(manifest: Mapping[str, Any]) -> str | None:
    """Why a rendered ConfigMap cannot be applied (too large), checked before the API server is asked."""
    size = sum(len(v) for v in (manifest.get("data") or {}).values())
    size += sum(len(v) for v in (manifest.get("binaryData") or {}).values())
    if size > CONFIGMAP_BUDGET:
        return f"compiled config is {size} bytes, over the {CONFIGMAP_BUDGET}-byte budget of one ConfigMap"
    return None


async def reconcile_gateway(
    kube: Kube, gw: Gateway, compiled: Compiled, served: frozenset[str], config_replicas: int | None
) -> GatewayOutcome:
    """Apply every child; the first failure stops this gateway (never the others) and is reported."""
    assert gw.spec is not None
    monitoring, monitoring_msg = monitoring_state(gw, served)
    applied: dict[str, dict[str, Any]] = {}
    error, permanent = None, False
    current = "children"
    try:
        current = "Secret " + viewer_secret_name(gw.name)
        await viewer.ensure_secret(kube, gw)  # before the Deployment whose env references it
        if gw.spec.autoscaling.enabled:
            current = "Deployment replicas handover"
            await hand_replicas_to_hpa(kube, gw.namespace, render.names(gw.name)["deployment"])
        for manifest in render.children(gw, compiled, served):
            current = f"{manifest['kind']} {manifest['metadata']['name']}"
            if manifest["kind"] == "ConfigMap" and (too_big := config_map_error(manifest)):
                error, permanent = f"{current}: {too_big}", True
                continue  # the pods keep the last config; the other children still apply
            applied[manifest["kind"]] = await apply(kube, manifest)
        for _, kind, name in render.unwanted(gw, served):
            current = f"delete {kind} {name}"
            await delete(kube, kind, gw.namespace, name)
    except KubeError as exc:
        if exc.namespace_terminating:
            raise
        error, permanent = f"{current}: {exc}", exc.permanent
    if error is not None:
        log.warning("AIGateway %s/%s: %s", gw.namespace, gw.name, error)
    deployment = applied.get("Deployment")
    if deployment is None and error is not None:
        deployment = await _safe_get(kube, "Deployment", gw.namespace, render.names(gw.name)["deployment"])
    return GatewayOutcome(
        compiled=compiled,
        deployment=deployment,
        service=applied.get("Service"),
        monitoring=monitoring,
        monitoring_message=monitoring_msg,
        apply_error=error,
        config_replicas=config_replicas,
        apply_permanent=permanent,
        config_applied="ConfigMap" in applied,
    )


async def _safe_get(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await kube.get(kind, namespace, name)
    except KubeError:
        return None


def status_changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether applying `new` changes anything (conditions compared by type: others are not ours)."""
    return live_changed(previous, new, ignore=())


async def _write_status(
    kube: Kube,
    obj: Obj[Any],
    status: dict[str, Any],
    events: list[EventSpec],
    sink: EventSink | None = None,
    store: ObjectStore | None = None,
) -> None:
    await _write_statuses(kube, [(obj, status, events)], MANAGER, sink, store)


def config_event(gw: Gateway, outcome: GatewayOutcome) -> EventSpec | None:
    """ConfigCreated/ConfigUpdated, only for a config that actually reached its ConfigMap."""
    c = outcome.compiled
    old_hash = gw.status.get("configHash")
    if not outcome.config_applied or old_hash == c.config_hash:
        return None
    return EventSpec(
        "Normal",
        "ConfigUpdated" if old_hash else "ConfigCreated",
        f"config {c.config_hash and c.config_hash[:12]}: {len(c.models)} models, "
        f"{len(c.routes)} routes, {len(c.budgets)} budgets",
    )


@dataclass(frozen=True)
class Reconciled:
    """What one namespace reconcile did, for the status of every other kind."""

    snapshot: Snapshot
    outcomes: Mapping[str, GatewayOutcome]
    failures: tuple[str, ...]
    permanent: bool  # every failure was the API server refusing a request (back off further)
    cache: StatsCache | None = None

    @cached_property
    def _pod_models(self) -> dict[str, list[Mapping[str, int] | None]]:
        """Per gateway, what each reporting pod's config holds (empty: no pod reports)."""
        if self.cache is None:
            return {}
        return {g: self.cache.pod_models(self.snapshot.namespace, g) for g in self.outcomes}

    def unloaded(self, gateway: str, model: Model) -> str | None:
        """ "k of n pods of AIGateway g" when some reporting pod's config lacks this generation of `model`."""
        pods = self._pod_models.get(gateway) or []
        serving = sum(1 for m in pods if m is not None and m.get(model.name) == model.generation)
        return f"{serving} of {len(pods)} pods of AIGateway {gateway}" if serving < len(pods) else None

    @cached_property
    def _members(self) -> dict[tuple[str, str], frozenset[str]]:
        """(gateway, Compiled attribute) -> its names as a set: lookups stay O(1) with thousands of models."""
        attrs = ("models", "policies", "budgets")
        return {(g, a): frozenset(getattr(o.compiled, a)) for g, o in self.outcomes.items() for a in attrs}

    def includes(self, gateway: str, attr: str, name: str) -> bool:
        return name in self._members[(gateway, attr)]

    def applied(self, attr: str, name: str) -> list[str]:
        """Gateways whose applied config includes `name` (in Compiled.<attr>)."""
        return [g for g, o in self.outcomes.items() if o.config_applied and self.includes(g, attr, name)]

    def problems(self, kind: str, name: str) -> list[Problem]:
        found = (p for o in self.outcomes.values() for p in o.compiled.problems if p.kind == kind and p.name == name)
        return list(dict.fromkeys(found))


async def _reconcile_gateways(
    kube: Kube, snap: Snapshot, cache: StatsCache | None, now: str, sink: EventSink | None, store: ObjectStore | None
) -> dict[str, GatewayOutcome]:
    served = (await kube.served_kinds(MONITORING_API)) & MONITORING_KINDS if snap.gateways else frozenset()
    outcomes: dict[str, GatewayOutcome] = {}
    generations = {m.name: m.generation for m in snap.models}
    for gw in (g for g in snap.gateways if not g.deleting):
        c = compile_gateway(gw, snap)
        if cache is not None and c.config_hash is not None:
            cache.configs.remember(snap.namespace, gw.name, c.config_hash, {m: generations[m] for m in c.models})
        stats = cache.get(snap.namespace, gw.name) if cache is not None else None
        config_replicas = stats.pods_on(c.config_hash) if stats is not None and c.ok else None
        if gw.spec is None:
            outcome = GatewayOutcome(c, None, None, "Disabled", "spec invalid")
        else:
            outcome = await reconcile_gateway(kube, gw, c, served, config_replicas)
        outcomes[gw.name] = outcome
        status = gateway_status(gw, outcome, now)
        events = transition_events(gw.conditions, status["conditions"])
        if (ev := config_event(gw, outcome)) is not None:
            events.append(ev)
            if c.config_hash is not None:
                await kick_pods(kube, snap.namespace, gw.name, c.config_hash)
        await _write_status(kube, gw, status, events, sink, store)
    return outcomes


def placement(r: Reconciled, model: Model) -> ModelPlacement:
    selecting = [
        g.name
        for g in r.snapshot.gateways
        if g.name in r.outcomes and g.spec is not None and g.spec.model_selector.matches(dict(model.labels))
    ]
    outs = {g: r.outcomes[g] for g in selecting}
    unapplied = [
        g for g, o in outs.items() if o.compiled.ok and not o.config_applied and r.includes(g, "models", model.name)
    ]
    applied = r.applied("models", model.name)
    return ModelPlacement(
        applied=applied,
        unloaded=[u for g in applied if (u := r.unloaded(g, model)) is not None],
        broken=[g for g, o in outs.items() if not o.compiled.ok],
        unapplied=unapplied,
        unapplied_permanent=bool(unapplied) and all(outs[g].apply_permanent for g in unapplied),
    )


STATUS_WRITERS = 32  # concurrent writes: thousands of models are not written one by one


StatusWrite = tuple[Obj[Any], dict[str, Any], list[EventSpec]]


async def _write_statuses(
    kube: Kube,
    writes: list[StatusWrite],
    manager: str = MANAGER,
    sink: EventSink | None = None,
    store: ObjectStore | None = None,
) -> None:
    """Every status first, then every Event: status is what readers wait on (kubectl wait, kstatus),
    Events are news, so no status write queues behind N Event posts. Each object's status is still
    written before its Events (a threshold Event recorded in status is never posted twice). With a
    sink the Events are queued and posted off this run (events.py); without, posted here."""

    async def status(obj: Obj[Any], new: dict[str, Any]) -> None:
        stored = await apply_status(kube, obj.kind, obj.namespace, obj.name, new, manager=manager)
        if store is not None:
            store.wrote(obj, stored)
        if sink is not None:
            sink.metrics.status_writes.inc()

    async def event(obj: Obj[Any], ev: EventSpec) -> None:
        await emit_event(kube, ref(obj), ev.type, ev.reason, ev.message)

    changed = [(obj, new) for obj, new, _ in writes if status_changed(obj.status, new)]
    with sink.writing() if sink is not None else contextlib.nullcontext():
        await in_parallel(STATUS_WRITERS, status, changed)
    if sink is not None:
        for obj, _, events in writes:
            for ev in events:
                sink.post(ref(obj), ev)
        return
    await in_parallel(STATUS_WRITERS, event, [(obj, ev) for obj, _, events in writes for ev in events])


async def in_parallel(workers: int, call: Callable[..., Awaitable[None]], items: list[tuple[Any, ...]]) -> None:
    """`call(*item)` for every item, `workers` at a time: a few tasks, not one per item (a burst of
    5,000 writes made 5,000 tasks, their frames and their requests at once, for 32 to run)."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await call(*item)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(items)))))


def with_transitions(obj: Obj[Any], status: dict[str, Any]) -> StatusWrite:
    return obj, status, transition_events(obj.conditions, status["conditions"])


def _live_writes(objs: Iterable[Obj[S]], status_of: Callable[[Obj[S]], dict[str, Any]]) -> list[StatusWrite]:
    """The status write of every object of one kind not being deleted."""
    return [with_transitions(o, status_of(o)) for o in objs if not o.deleting]


def _model_writes(r: Reconciled, now: str, hold_unselected: bool = False) -> tuple[list[StatusWrite], int]:
    """The models' status writes, and how many first statuses were held without being computed: while
    a namespace with no gateway yet is still filling, every first status would say NotSelected."""
    models = r.snapshot.models
    if hold_unselected and not r.outcomes:
        models = tuple(m for m in models if find(m.conditions, "Ready") is not None)
    status = _live_writes(models, lambda m: model_status(m, placement(r, m), model_problem(m), now))
    return status, len(r.snapshot.models) - len(models)


def _policy_writes(r: Reconciled, now: str) -> list[StatusWrite]:
    model_names = {m.name for m in r.snapshot.models}

    def status(policy: Policy) -> dict[str, Any]:
        owned = {route for o in r.outcomes.values() for route, p in o.compiled.route_owners if p == policy.name}
        problems = r.problems("RoutingPolicy", policy.name)
        applied = r.applied("policies", policy.name)
        missing = policy_missing_models(policy, model_names)
        return policy_status(policy, missing, problems, applied, now, served_routes=sorted(owned))

    return _live_writes(r.snapshot.policies, status)


def _budget_writes(r: Reconciled, now: str) -> list[StatusWrite]:
    gateway_names = set(r.outcomes)

    def status(budget: Budget) -> dict[str, Any]:
        problem = budget_problem(budget, gateway_names)
        return budget_status(
            budget, problem, r.problems("CostBudget", budget.name), r.applied("budgets", budget.name), now
        )

    return _live_writes(r.snapshot.budgets, status)


def first_unselected(write: StatusWrite) -> bool:
    """A first status saying no gateway selects the object (held during a burst, arrivals.py)."""
    obj, status, _ = write
    ready = find(status["conditions"], "Ready")
    return ready is not None and ready.get("reason") == "NotSelected" and find(obj.conditions, "Ready") is None


@dataclass(frozen=True)
class Run:
    snapshot: Snapshot
    held: int = 0  # first `NotSelected` statuses not written (hold_unselected)


async def reconcile_namespace(
    kube: Kube,
    namespace: str,
    cache: StatsCache | None = None,
    sink: EventSink | None = None,
    store: ObjectStore | None = None,
    hold_unselected: bool = False,
) -> Run:
    """Reconcile every aimm.io object in `namespace` (read from `store`, the watch's view, when
    given; else listed). With `hold_unselected`, first statuses that would say NotSelected are not
    written (new objects are still arriving; their gateway may be among them). Raises
    ReconcileError after trying everything."""
    snap = store.snapshot(namespace) if store is not None else await read_snapshot(kube, namespace)
    now = rfc3339(now_utc())
    outcomes = await _reconcile_gateways(kube, snap, cache, now, sink, store)
    failed = {g: o for g, o in outcomes.items() if o.apply_error}
    r = Reconciled(
        snap,
        outcomes,
        tuple(f"AIGateway {g}: {o.apply_error}" for g, o in failed.items()),
        bool(failed) and all(o.apply_permanent for o in failed.values()),
        cache,
    )
    model_writes, held = _model_writes(r, now, hold_unselected)
    writes = model_writes + _policy_writes(r, now) + _budget_writes(r, now)
    if hold_unselected:
        kept = [w for w in writes if not first_unselected(w)]
        held, writes = held + len(writes) - len(kept), kept
    await _write_statuses(kube, writes, sink=sink, store=store)
    if r.failures:
        raise ReconcileError("; ".join(r.failures), permanent=r.permanent)
    return Run(snap, held)


# ------------------------------------------------------------------------------ stats poll
def _served(objs: Iterable[Obj[S]], gateway: str, merged: MergedStats) -> Iterator[tuple[Obj[S], GatewayStats | None]]:
    """The objects `gateway` serves (not being deleted), each with the merged stats of every
    gateway serving it."""
    for obj in objs:
        gateways = list(obj.status.get("gateways") or [])
        if gateway in gateways and not obj.deleting:
            yield obj, merged.of(gateways)


class MergedStats:
    """The cache's merge per distinct set of gateways, computed once per poll: objects served by the
    same gateways (nearly always all of them) share one merge, so a poll is O(N), not O(N^2)."""

    def __init__(self, cache: StatsCache, namespace: str) -> None:
        self._cache = cache
        self._namespace = namespace
        self._merged: dict[tuple[str, ...], GatewayStats | None] = {}

    def of(self, gateways: list[str]) -> GatewayStats | None:
        key = tuple(sorted(set(gateways)))
        if key not in self._merged:
            self._merged[key] = self._cache.merged(self._namespace, key)
        return self._merged[key]


async def _write_live_statuses(
    kube: Kube, cache: StatsCache, gw: Gateway, memo: PollMemo, sink: EventSink | None, store: ObjectStore | None
) -> None:
    """The statuses the stats of the namespace's gateways make for the objects `gw` serves; nothing
    when neither the stats nor the objects changed since this was last done (an idle fleet)."""
    ns = gw.namespace
    changes = store.changes(ns) if store is not None else None
    basis = (changes, cache.in_namespace(ns)) if changes is not None else None
    if basis is not None and memo.unchanged(basis):
        return
    now = now_utc()
    stamp_now = rfc3339(now)
    models, budgets = await _models_and_budgets(kube, ns, store)
    merged = MergedStats(cache, ns)
    writes: list[StatusWrite] = []
    for model, stats_of in _served(models, gw.name, merged):
        agg = stats_of.models.get(model.name) if stats_of else None
        if (agg is None or agg.pods == 0) and find(model.conditions, "Available") is None:
            continue  # nothing to report yet: no N writes of "Unknown" into a freshly applied namespace
        live = model_live_status(model, agg, stamp_now)
        if live_changed(model.status, live):
            writes.append((model, live, model_events(model, live)))
    for budget, stats_of in _served(budgets, gw.name, merged):
        figure = stats_of.budgets.get(budget.name) if stats_of else None
        live, events = budget_live_status(budget, figure, stats_of.crossings if stats_of else (), now)
        if live and (events or live_changed(budget.status, live)):
            writes.append((budget, live, events))
    await _write_statuses(kube, writes, manager=STATS_MANAGER, sink=sink, store=store)
    memo.basis = basis  # computed on what was there before these writes: their watch events count as a change


async def _no_answers() -> list[Answer]:
    return []


@dataclass(frozen=True)
class PollResult:
    pods: int
    needs_reconcile: bool


async def _models_and_budgets(kube: Kube, ns: str, store: ObjectStore | None) -> tuple[list[Model], list[Budget]]:
    if store is not None:
        return list(store.objects("AIModel", ns)), list(store.objects("CostBudget", ns))
    models, budgets = await asyncio.gather(kube.list("AIModel", ns), kube.list("CostBudget", ns))
    return [parse_model(m) for m in models], [parse_budget(b) for b in budgets]


async def poll_gateway(
    kube: Kube,
    http: httpx.AsyncClient,
    cache: StatsCache,
    body: Mapping[str, Any],
    sink: EventSink | None = None,
    store: ObjectStore | None = None,
) -> PollResult:
    """Poll one gateway's pods, write live AIModel/CostBudget status, and tell whether the
    gateway's own status is stale (rollout progress or config adoption changed)."""
    gw = parse_gateway(body)
    ns = gw.namespace
    slices = await kube.list("EndpointSlice", ns, f"{render.SERVICE_NAME_LABEL}={render.names(gw.name)['service']}")
    endpoints = endpoints_from_slices(slices)
    want_budgets = bool(gw.status.get("budgets"))  # the applied config has budgets
    key = await viewer.read_key(kube, ns, gw.name) if endpoints else None
    memo = cache.poll_memo(ns, gw.name)
    stats_answers, budget_answers = await asyncio.gather(
        fetch_answers(http, endpoints, STATS_PATH, key),
        fetch_answers(http, endpoints, BUDGETS_PATH, key) if want_budgets else _no_answers(),
    )
    stats = memo.aggregate(stats_answers, budget_answers)
    cache.put(ns, gw.name, stats)
    await _write_live_statuses(kube, cache, gw, memo, sink, store)

    deployment = await kube.get("Deployment", ns, render.names(gw.name)["deployment"])
    ro = rollout(deployment)
    st = gw.status
    progressing: dict[str, Any] = next((c for c in gw.conditions if c.get("type") == "Progressing"), {})
    stalled = any(c.get("type") == "Stalled" and c.get("status") == "True" for c in gw.conditions)
    stale = (
        st.get("replicas") != ro.replicas
        or st.get("readyReplicas") != ro.ready
        or st.get("updatedReplicas") != ro.updated
        or (not stalled and (progressing.get("status") == "True") == (ro.complete or ro.failed))
    )
    config_hash = st.get("configHash")
    if config_hash and stats.pods and st.get("configReplicas") != stats.pods_on(config_hash):
        stale = True
    return PollResult(pods=stats.pods, needs_reconcile=stale)
