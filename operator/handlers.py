"""kopf handlers: thin. Every change funnels into one coalesced, idempotent namespace reconcile.

No module-level registry or state: `build_registry` returns a fresh kopf.OperatorRegistry whose
handlers find the operator's context (API client, HTTP client, stats cache, coalescer) in kopf's
memo, where the startup handler put it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf

from aimm_operator import heap, memtrace
from aimm_operator.arrivals import Arrivals
from aimm_operator.coalesce import Coalescer
from aimm_operator.crd.common import GROUP, VERSION
from aimm_operator.credentials import Credentials
from aimm_operator.events import EventSink
from aimm_operator.kube import Kube, KubeError
from aimm_operator.metrics import OperatorMetrics
from aimm_operator.reconcile import ReconcileError, poll_gateway, reconcile_namespace
from aimm_operator.stats import StatsCache
from aimm_operator.store import INDEXED, ObjectStore
from aimm_operator.watch import Scope, Watcher

log = logging.getLogger("aimm_operator")

FINALIZER = "aimm.io/finalizer"
ANNOTATION_PREFIX = "aimm.io"
MONITORING_GROUP = "monitoring.coreos.com"


@dataclass(frozen=True)
class OperatorSettings:
    credentials: Credentials
    stats_interval_s: float = 10.0
    stats_timeout_s: float = 2.0
    resync_interval_s: float = 300.0
    retry_delay_s: float = 1.0
    max_retry_delay_s: float = 300.0
    watch_crds: bool = True  # needs list/watch on CRDs cluster-wide (the ClusterRole grants it)
    metrics_port: int = 0  # serve Prometheus metrics here; 0 = off
    namespaces: tuple[str, ...] = ()  # the namespaces watched; none: every namespace


def watch_scopes(op: OperatorSettings) -> list[Scope]:
    """One list+watch per kind and watched namespace (one per kind cluster-wide)."""
    return [Scope(kind, ns) for kind in INDEXED for ns in (op.namespaces or (None,))]


def backoff_delay(settings: OperatorSettings, failures: int) -> float:
    """Exponential backoff: 1 s, 2 s, 4 s ... capped (a refused apply is never retried once a second)."""
    return float(min(settings.max_retry_delay_s, settings.retry_delay_s * 2 ** max(0, failures - 1)))


@dataclass
class OperatorContext:
    settings: OperatorSettings
    kube: Kube
    http: httpx.AsyncClient
    cache: StatsCache
    reconciles: Coalescer[str] = field(init=False)
    events: EventSink = field(init=False)
    last_reconciled: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # consecutive failed reconciles per namespace
    retries: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # the pending retry per namespace
    seen: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # uid -> fingerprint (see notice)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    store: ObjectStore | None = None  # the watch's view of the objects (None: list them per run)
    watcher: Watcher | None = None  # feeds `store` (watch.py); runs wait for its first lists
    arrivals: Arrivals = field(default_factory=Arrivals)
    follow_ups: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # after a burst, per namespace
    trimmer: asyncio.Task[None] | None = None  # gives freed heap pages back (heap.py)

    def __post_init__(self) -> None:
        self.reconciles = Coalescer(self._reconcile)
        self.events = EventSink(self.kube, metrics=self.metrics)

    async def _reconcile(self, namespace: str) -> None:
        """One (coalesced) run. A failure schedules our own retry with exponential backoff, counted
        once per run however many events were waiting on it; nothing is raised to kopf, whose
        per-object retries would patch an annotation on every object of the namespace each time."""
        if self.watcher is not None:
            await self.watcher.synced.wait()  # never a config compiled from a partial namespace
        if (pause := self.arrivals.run_delay(namespace)) > 0:
            await asyncio.sleep(pause)  # a burst is arriving: this run will see more of it
        self.arrivals.run_started(namespace)
        started = time.monotonic()
        try:
            hold = self.arrivals.holding(namespace)
            run = await reconcile_namespace(
                self.kube, namespace, self.cache, self.events, self.store, hold_unselected=hold > 0
            )
            if run.held:  # write them once the burst is over, if nothing else asks first
                self._later(self.follow_ups, namespace, hold)
        except Exception as exc:  # anything, a bug included, is retried later rather than lost
            if isinstance(exc, KubeError) and exc.namespace_terminating:
                log.info("namespace %s is being deleted; nothing to reconcile", namespace)
                return
            self.metrics.reconciles.labels("error").inc()
            self.metrics.retries.inc()
            self.failures[namespace] = self.failures.get(namespace, 0) + 1
            delay = backoff_delay(self.settings, self.failures[namespace])
            expected = isinstance(exc, (KubeError, ReconcileError))
            log.warning(
                "reconcile of namespace %s incomplete (retry in %.0fs): %s",
                namespace,
                delay,
                exc,
                exc_info=None if expected else exc,
            )
            self._later(self.retries, namespace, delay)
        else:
            self.metrics.reconciles.labels("ok").inc()
            self.failures.pop(namespace, None)
            if (pending := self.retries.pop(namespace, None)) is not None:
                pending.cancel()
        finally:
            self.last_reconciled[namespace] = time.monotonic()
            self.metrics.reconcile_seconds.observe(self.last_reconciled[namespace] - started)

    async def reconcile(self, namespace: str) -> None:
        """Reconcile `namespace` (coalesced with concurrent requests); failures are retried by us."""
        await self.reconciles.request(namespace)

    def request_reconcile(self, namespace: str) -> None:
        """Reconcile `namespace` soon, without waiting for it (watch events: see `changed`)."""
        self.reconciles.kick(namespace)

    def _later(self, pending: dict[str, asyncio.Task[None]], namespace: str, delay: float) -> None:
        """One reconcile of `namespace` after `delay`, replacing the one pending in `pending`."""
        if (task := pending.pop(namespace, None)) is not None:
            task.cancel()

        async def later() -> None:
            await asyncio.sleep(delay)
            pending.pop(namespace, None)
            await self.reconcile(namespace)

        pending[namespace] = asyncio.create_task(later(), name=f"later-{namespace}")

    def watched(self, kind: str, event_type: str, body: Mapping[str, Any]) -> None:
        """One watch event (watch.py): into the store; a reconcile of its namespace when it matters."""
        if self.store is not None:
            self.store.watched(kind, event_type, body)
        namespace = (body.get("metadata") or {}).get("namespace")
        if namespace and self.notice(event_type, body):
            self.request_reconcile(namespace)

    def notice(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Remember what was seen of an object; True when it changed in a way that matters."""
        uid = (body.get("metadata") or {}).get("uid", "")
        if event_type == "DELETED":
            self.seen.pop(uid, None)
            return True
        new = fingerprint(body)
        if self.seen.get(uid) == new:
            return False
        if uid not in self.seen and (namespace := (body.get("metadata") or {}).get("namespace")):
            self.arrivals.arrived(namespace)
        self.seen[uid] = new
        return True

    def known_namespaces(self) -> list[str]:
        return sorted(self.last_reconciled)

    def resync_due(self, namespace: str) -> bool:
        last = self.last_reconciled.get(namespace)
        return last is None or time.monotonic() - last > self.settings.resync_interval_s

    def start(self, watcher: Watcher | None = None) -> None:
        self.trimmer = asyncio.create_task(heap.trim_forever(), name="heap-trim")
        self.watcher = watcher
        if watcher is not None:
            watcher.start()

    async def aclose(self) -> None:
        if self.watcher is not None:
            await self.watcher.aclose()
        for task in [*self.retries.values(), *self.follow_ups.values(), *([self.trimmer] if self.trimmer else [])]:
            task.cancel()
        await self.events.aclose()
        await self.http.aclose()
        await self.kube.aclose()
        self.metrics.close()


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: we register no change-detecting handlers (create/update/resume/delete) and no
    idle timers, the only users of one. kopf still builds one for every watch event, deep-copying
    the whole body (managedFields and status included): at 1,000 models, the events of our own
    status writes made that the largest part of kopf's work. `build_registry` checks it stays unused."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure(settings: kopf.OperatorSettings) -> None:
    """Our own annotation prefix and finalizer; no status.kopf (our status schema is ours)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    # CRDs are installed before the operator (Helm crds/): kopf needs no scanning of its own (our
    # only CRD read is the watch on monitoring.coreos.com ones, see register_watches).
    settings.scanning.disabled = True
    settings.posting.level = logging.WARNING  # our own Events tell the story; kopf's only on trouble
    # A stats poll in flight when an AIGateway is deleted: wait for it briefly, then re-check
    # often, so the finalizer is released in about a second rather than a minute.
    settings.background.instant_exit_timeout = 3.0
    settings.background.cancellation_polling = 0.5
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.queueing.error_delays = (1, 2, 5, 10, 20)
    # kopf keeps a worker per object for this long after its last event, holding that event's whole
    # body (managedFields included): 5 s by default, thousands at once while a burst's statuses land.
    settings.queueing.idle_timeout = 1.0


def ctx_of(memo: Any) -> OperatorContext:
    ctx = memo.get("ctx") if isinstance(memo, dict) else None
    assert isinstance(ctx, OperatorContext), "operator context missing from kopf memo"
    return ctx


def fingerprint(body: Any) -> tuple[Any, ...]:
    """What of an object can change a namespace's configs: its spec (generation), labels, deletion.
    Status writes (ours, the poller's) change none of it, so they trigger nothing."""
    meta = body.get("metadata") or {}
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    return (meta.get("generation"), labels, bool(meta.get("deletionTimestamp")))


def monitoring_crd(body: kopf.Body, **_: Any) -> bool:
    return bool((body.get("spec") or {}).get("group") == MONITORING_GROUP)


async def crd_changed(memo: kopf.Memo, **_: Any) -> None:
    """Prometheus Operator CRDs installed or removed: ServiceMonitor/PrometheusRule follow in seconds."""
    ctx = ctx_of(memo)
    for namespace in ctx.known_namespaces():
        await ctx.reconcile(namespace)


def register_watches(registry: kopf.OperatorRegistry, op: OperatorSettings) -> None:
    """kopf watches only the CRDs (for the Prometheus Operator's): our kinds are watched by watch.py,
    and kopf watches AIGateways for the stats timer alone (no event handler on them)."""
    if op.watch_crds:
        kopf.on.event(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions", registry=registry, when=monitoring_crd
        )(crd_changed)


def build_registry(op: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        configure(settings)
        memo["memtrace"] = memtrace.install(asyncio.get_running_loop())  # debug only: AIMM_OPERATOR_MEMTRACE
        ctx = memo["ctx"] = OperatorContext(
            settings=op,
            kube=Kube(op.credentials),
            http=httpx.AsyncClient(timeout=op.stats_timeout_s, headers={"User-Agent": "aimm-operator"}),
            cache=StatsCache(max_age_s=max(3 * op.stats_interval_s, 30.0)),
            store=ObjectStore(),
        )
        ctx.start(Watcher(ctx.kube, watch_scopes(op), ctx.watched))
        if op.metrics_port:
            memo["ctx"].metrics.serve(op.metrics_port)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        ctx = memo.get("ctx")
        if isinstance(ctx, OperatorContext):
            await ctx.aclose()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        c = op.credentials
        return kopf.ConnectionInfo(
            server=c.server,
            ca_path=c.ca_path,
            insecure=c.insecure,
            scheme="Bearer" if c.bearer() else None,
            token=c.bearer(),
            certificate_path=c.cert_path,
            private_key_path=c.key_path,
        )

    register_watches(registry, op)
    # NoDiffBase holds only while nothing needs a diff base (see its docstring).
    assert not registry._changing.get_all_handlers(), "change-detecting handlers need a real diff base"
    assert all(getattr(h, "idle", None) is None for h in registry._spawning.get_all_handlers()), (
        "idle needs a diff base"
    )

    @kopf.timer(
        GROUP,
        VERSION,
        "aigateways",
        registry=registry,
        interval=op.stats_interval_s,
        initial_delay=min(1.0, op.stats_interval_s),
        id="stats",
    )
    async def stats(body: kopf.Body, namespace: str | None, memo: kopf.Memo, logger: Any, **_: Any) -> None:
        if not namespace:
            return
        ctx = ctx_of(memo)
        if ctx.watcher is not None:
            await ctx.watcher.synced.wait()  # the poll reads the store
        try:
            result = await poll_gateway(ctx.kube, ctx.http, ctx.cache, body, ctx.events, ctx.store)
        except KubeError as exc:
            ctx.metrics.stats_polls.labels("error").inc()
            logger.warning("stats poll failed: %s", exc)
            return
        ctx.metrics.stats_polls.labels("ok").inc()
        if result.needs_reconcile or ctx.resync_due(namespace):
            await ctx.reconcile(namespace)

    return registry
