"""Live statistics from the gateway pods: polling, aggregation, and the status they produce.

Each gateway pod serves `GET /api/v1/stats` (aggregates only, no auth). The operator finds the
pods through the EndpointSlices of the gateway's Service, polls them concurrently, and sums the
counters across pods (max p95, worst circuit state) and then across the gateways serving a model.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimm_operator.budget import BudgetFigure, PodBudgets, ThresholdCrossing, merge_figures
from aimm_operator.objects import Model
from aimm_operator.status import Cond, EventSpec, condition, find, stamp

log = logging.getLogger("aimm_operator.stats")

STATS_PATH = "/api/v1/stats"
CENT = Decimal("0.0001")  # status shows four decimals of a dollar
CircuitState = Literal["closed", "half_open", "open", "unknown"]
_SEVERITY = {"closed": 0, "unknown": 1, "half_open": 2, "open": 3}
DocT = TypeVar("DocT", bound=BaseModel)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PodModelStats(_Lenient):
    requests_total: int = 0
    errors_total: int = 0
    requests_per_minute: float = 0.0
    error_rate: float = Field(0.0, ge=0, le=1)
    p95_latency_ms: float | None = None
    cost_usd_total: Decimal = Decimal(0)
    circuit_state: CircuitState = "closed"
    last_error: str | None = None
    available: bool = True


class PodStats(_Lenient):
    config_hash: str | None = None
    models: dict[str, PodModelStats] = Field(default_factory=dict)


@dataclass(frozen=True)
class ModelAggregate:
    requests_total: int = 0
    errors_total: int = 0
    requests_per_minute: float = 0.0
    error_rate: float = 0.0
    p95_latency_ms: float | None = None
    cost_usd: Decimal = Decimal(0)
    circuit_state: CircuitState = "closed"
    last_error: str | None = None
    available: bool = False
    pods: int = 0


@dataclass(frozen=True)
class GatewayStats:
    models: Mapping[str, ModelAggregate] = field(default_factory=dict)
    budgets: Mapping[str, BudgetFigure] = field(default_factory=dict)
    config_hashes: tuple[str | None, ...] = ()
    crossings: tuple[ThresholdCrossing, ...] = ()

    @property
    def pods(self) -> int:
        return len(self.config_hashes)

    def pods_on(self, config_hash: str | None) -> int:
        return sum(1 for h in self.config_hashes if same_hash(h, config_hash))


def same_hash(a: str | None, b: str | None) -> bool:
    """Config hashes as the pods report them may be shortened: a prefix of the other matches."""
    return bool(a and b and (a.startswith(b) or b.startswith(a)))


ModelVersions = Mapping[str, int]  # model name -> the generation compiled into a config


class ConfigHistory:
    """The models (at which generation) in the last configs compiled for each gateway, so the
    config hash a pod reports says which models it serves. Bounded: the last KEEP configs."""

    KEEP = 8

    def __init__(self) -> None:
        self._by_gateway: dict[tuple[str, str], dict[str, ModelVersions]] = {}

    def remember(self, namespace: str, gateway: str, config_hash: str, models: ModelVersions) -> None:
        history = self._by_gateway.setdefault((namespace, gateway), {})
        history.pop(config_hash, None)
        history[config_hash] = models  # newest last
        while len(history) > self.KEEP:
            del history[next(iter(history))]

    def models_of(self, namespace: str, gateway: str, pod_hash: str | None) -> ModelVersions | None:
        history = self._by_gateway.get((namespace, gateway), {})
        return next((m for h, m in reversed(history.items()) if same_hash(h, pod_hash)), None)

    def forget(self, namespace: str, gateway: str) -> None:
        self._by_gateway.pop((namespace, gateway), None)


def _merge_models(parts: Sequence[ModelAggregate]) -> ModelAggregate:
    rpm = sum(p.requests_per_minute for p in parts)
    if rpm > 0:
        error_rate = sum(p.error_rate * p.requests_per_minute for p in parts) / rpm
    else:
        error_rate = max((p.error_rate for p in parts), default=0.0)
    p95s = [p.p95_latency_ms for p in parts if p.p95_latency_ms is not None]
    circuit: CircuitState = max((p.circuit_state for p in parts), key=lambda s: _SEVERITY[s], default="closed")
    return ModelAggregate(
        requests_total=sum(p.requests_total for p in parts),
        errors_total=sum(p.errors_total for p in parts),
        requests_per_minute=rpm,
        error_rate=error_rate,
        p95_latency_ms=max(p95s) if p95s else None,
        cost_usd=sum((p.cost_usd for p in parts), Decimal(0)),
        circuit_state=circuit,
        last_error=next((p.last_error for p in parts if p.last_error), None),
        available=any(p.available for p in parts),
        pods=sum(p.pods for p in parts),
    )


def _from_pod(s: PodModelStats) -> ModelAggregate:
    return ModelAggregate(
        requests_total=s.requests_total,
        errors_total=s.errors_total,
        requests_per_minute=s.requests_per_minute,
        error_rate=s.error_rate,
        p95_latency_ms=s.p95_latency_ms,
        cost_usd=s.cost_usd_total,
        circuit_state=s.circuit_state,
        last_error=s.last_error,
        available=s.available,
        pods=1,
    )


def aggregate_pods(pods: Sequence[PodStats], budget_docs: Sequence[PodBudgets] = ()) -> GatewayStats:
    """One gateway: sum counts, cost and rpm; max p95; worst circuit; available if any pod is.
    Budget figures come from the first pod that answered (the gateways compute them from the
    shared store/state, the same on every replica with spec.redis); crossings from every pod
    (each crossing is announced by one replica only)."""
    per_model: dict[str, list[ModelAggregate]] = {}
    for pod in pods:
        for name, s in pod.models.items():
            per_model.setdefault(name, []).append(_from_pod(s))
    return GatewayStats(
        models={name: _merge_models(parts) for name, parts in sorted(per_model.items())},
        budgets={b.name: b for b in budget_docs[0].budgets} if budget_docs else {},
        config_hashes=tuple(p.config_hash for p in pods),
        crossings=tuple(c for doc in budget_docs for c in doc.threshold_events),
    )


def merge_gateways(stats: Iterable[GatewayStats]) -> GatewayStats:
    """Several gateways serving the same models: the same sums, one level up."""
    per_model: dict[str, list[ModelAggregate]] = {}
    figures: dict[str, list[BudgetFigure]] = {}
    hashes: list[str | None] = []
    crossings: list[ThresholdCrossing] = []
    for g in stats:
        for name, agg in g.models.items():
            per_model.setdefault(name, []).append(agg)
        for name, fig in g.budgets.items():
            figures.setdefault(name, []).append(fig)
        hashes.extend(g.config_hashes)
        crossings.extend(g.crossings)
    return GatewayStats(
        {n: _merge_models(p) for n, p in sorted(per_model.items())},
        {n: merge_figures(f) for n, f in figures.items()},
        tuple(hashes),
        tuple(crossings),
    )


# ------------------------------------------------------------------------------ discovery + polling
def endpoints_from_slices(slices: Iterable[Mapping[str, Any]], port_name: str = "http") -> list[tuple[str, int]]:
    """(address, port) of every ready endpoint; the port is the slice's port named `port_name`."""
    out: list[tuple[str, int]] = []
    for sl in slices:
        if sl.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
            continue
        ports = [p for p in sl.get("ports") or [] if p.get("port")]
        port = next((p["port"] for p in ports if p.get("name") == port_name), None)
        if port is None and len(ports) == 1:
            port = ports[0]["port"]
        if port is None:
            continue
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for address in (ep.get("addresses") or [])[:1]:
                if (address, int(port)) not in out:
                    out.append((address, int(port)))
    return sorted(out)


def stats_url(address: str, port: int, path: str = STATS_PATH) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


Answer = tuple[str, bytes]  # one pod's answer: (its URL, the raw body)


async def fetch_one(client: httpx.AsyncClient, address: str, port: int, path: str, key: str | None) -> Answer | None:
    url = stats_url(address, port, path)
    try:
        resp = await client.get(url, headers=bearer(key))
        resp.raise_for_status()
        return url, resp.content
    except httpx.HTTPError as exc:
        log.warning("%s from %s:%d unavailable: %s", path, address, port, exc)
        return None


async def fetch_answers(
    client: httpx.AsyncClient, endpoints: Sequence[tuple[str, int]], path: str, key: str | None = None
) -> list[Answer]:
    """Every answering pod's document at `path`, unparsed, in endpoint order."""
    results = await asyncio.gather(*(fetch_one(client, a, p, path, key) for a, p in endpoints))
    return [r for r in results if r is not None]


def parse_answers(answers: Sequence[Answer], doc: type[DocT]) -> list[DocT]:
    """The answers that are valid documents (the others are logged and left out, as a pod that did not answer)."""
    parsed = []
    for url, raw in answers:
        try:
            parsed.append(doc.model_validate(orjson.loads(raw)))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            log.warning("%s unavailable: %s", url, exc)
    return parsed


def digests(answers: Sequence[Answer]) -> tuple[tuple[str, bytes], ...]:
    return tuple((url, hashlib.blake2b(raw, digest_size=16).digest()) for url, raw in answers)


@dataclass
class PollMemo:
    """One gateway's last poll: digests of the answers it was computed from, its aggregate, and what
    the statuses it wrote were computed against. A poll whose pods answered exactly as last time
    parses nothing and returns the same aggregate; in a namespace whose objects did not change
    since, it has nothing to write and skips the O(N) part. Digests, not documents: one pod's
    parsed answer at 5,000 models is ~6 MB, and a gateway may have 50 pods."""

    answers: tuple[tuple[tuple[str, bytes], ...], ...] = ()
    stats: GatewayStats | None = None
    basis: tuple[int, tuple[GatewayStats, ...]] | None = None  # (the store's change count, the namespace's stats)

    def aggregate(self, stats_answers: Sequence[Answer], budget_answers: Sequence[Answer]) -> GatewayStats:
        answers = (digests(stats_answers), digests(budget_answers))
        if self.stats is None or answers != self.answers:
            pods = parse_answers(stats_answers, PodStats)
            self.answers, self.stats = answers, aggregate_pods(pods, parse_answers(budget_answers, PodBudgets))
        return self.stats

    def unchanged(self, basis: tuple[int, tuple[GatewayStats, ...]]) -> bool:
        """Whether statuses were last computed on exactly this basis (the stats compared by identity)."""
        if self.basis is None or self.basis[0] != basis[0] or len(self.basis[1]) != len(basis[1]):
            return False
        return all(a is b for a, b in zip(self.basis[1], basis[1], strict=True))


class StatsCache:
    """The last poll of each gateway, so a model served by several gateways gets their sum."""

    def __init__(self, max_age_s: float, clock: Any = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, GatewayStats]] = {}
        self.configs = ConfigHistory()
        self.polls: dict[tuple[str, str], PollMemo] = {}

    def put(self, namespace: str, gateway: str, stats: GatewayStats) -> None:
        self._entries[(namespace, gateway)] = (self._clock(), stats)

    def get(self, namespace: str, gateway: str) -> GatewayStats | None:
        entry = self._entries.get((namespace, gateway))
        if entry is None or self._clock() - entry[0] > self.max_age_s:
            return None
        return entry[1]

    def forget(self, namespace: str, gateway: str) -> None:
        self._entries.pop((namespace, gateway), None)
        self.polls.pop((namespace, gateway), None)
        self.configs.forget(namespace, gateway)

    def in_namespace(self, namespace: str) -> tuple[GatewayStats, ...]:
        """Every gateway's current stats in `namespace` (what merges there are made of), by gateway name."""
        return tuple(s for (ns, g) in sorted(self._entries) if ns == namespace and (s := self.get(ns, g)) is not None)

    def poll_memo(self, namespace: str, gateway: str) -> PollMemo:
        return self.polls.setdefault((namespace, gateway), PollMemo())

    def pod_models(self, namespace: str, gateway: str) -> list[ModelVersions | None]:
        """For each pod that reported: the models its config holds (None: a config not known here)."""
        stats = self.get(namespace, gateway)
        if stats is None:
            return []
        return [self.configs.models_of(namespace, gateway, h) for h in stats.config_hashes]

    def merged(self, namespace: str, gateways: Iterable[str]) -> GatewayStats | None:
        found = [s for g in gateways if (s := self.get(namespace, g)) is not None]
        if len(found) == 1:  # one gateway (the common case): its stats already are the sums
            return found[0]
        return merge_gateways(found) if found else None


# ------------------------------------------------------------------------------ status
def percent(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def usd(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def model_live_status(model: Model, agg: ModelAggregate | None, now: str) -> dict[str, Any]:
    """Fields of AIModel.status owned by the stats poller (a separate field manager), plus `Available`."""
    gen = model.generation
    enabled = model.spec.enabled if model.spec is not None else True
    out: dict[str, Any] = {}
    cond: Cond
    if agg is None or agg.pods == 0:
        cond = condition("Available", "Unknown", "NoStats", "no gateway pod has reported this model yet", gen)
    else:
        out = {
            "circuitState": agg.circuit_state,
            "requestsPerMinute": round(agg.requests_per_minute, 2),
            "requestsTotal": agg.requests_total,
            "errorsTotal": agg.errors_total,
            "errorRate": percent(agg.error_rate),
            "costThisPeriod": usd(agg.cost_usd),
            "lastUpdated": now,
        }
        if agg.p95_latency_ms is not None:
            out["p95LatencyMs"] = round(agg.p95_latency_ms, 1)
            out["p95Latency"] = f"{agg.p95_latency_ms:.0f}ms"
        if agg.last_error:
            out["lastError"] = agg.last_error[:1024]
        if not enabled:
            cond = condition("Available", False, "Disabled", "spec.enabled is false", gen)
        elif agg.available and agg.circuit_state != "open":
            cond = condition("Available", True, "Healthy", f"served by {agg.pods} gateway pod(s)", gen)
        elif agg.circuit_state == "open":
            cond = condition("Available", False, "CircuitOpen", agg.last_error or "circuit breaker is open", gen)
        else:
            cond = condition("Available", False, "Unavailable", agg.last_error or "no healthy upstream", gen)
    out["conditions"] = stamp(model.conditions, [cond], now)
    return out


def model_events(model: Model, new: Mapping[str, Any]) -> list[EventSpec]:
    old_state = model.status.get("circuitState")
    new_state = new.get("circuitState")
    if new_state is None or old_state == new_state:
        return []
    if new_state == "open":
        return [EventSpec("Warning", "CircuitOpened", f"circuit breaker opened: {new.get('lastError') or 'failures'}")]
    if new_state == "closed" and old_state in ("open", "half_open"):
        return [EventSpec("Normal", "CircuitClosed", "circuit breaker closed; traffic resumed")]
    return []


_COND_KEYS = ("status", "reason", "message", "observedGeneration")


def live_changed(previous: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ("lastUpdated",)) -> bool:
    """Whether writing `new` would change anything but timestamps."""
    skip = set(ignore)
    for key, value in new.items():
        if key in skip:
            continue
        if key == "conditions":
            for cond in value:
                old = find(previous.get("conditions") or [], cond["type"])
                if old is None or any(old.get(k) != cond.get(k) for k in _COND_KEYS):
                    return True
            continue
        if previous.get(key) != value:
            return True
    return False
