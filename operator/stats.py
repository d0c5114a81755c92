"""Live statistics from the gateway pods: polling, aggregation, and the status they produce.

Each gateway pod serves `GET /api/v1/stats` (aggregates only, no auth). The operator finds the
pods through the EndpointSlices of the gateway's Service, polls them concurrently, and sums the
counters across pods (max p95, worst circuit state) and then across the gateways serving a model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimm_operator import budget as budget_math
from aimm_operator.objects import Budget, Model
from aimm_operator.status import Cond, EventSpec, condition, find, stamp

log = logging.getLogger("aimm_operator.stats")

STATS_PATH = "/api/v1/stats"
CircuitState = Literal["closed", "half_open", "open", "unknown"]
_SEVERITY = {"closed": 0, "unknown": 1, "half_open": 2, "open": 3}


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


class PodBudgetStats(_Lenient):
    spent_usd: Decimal = Decimal(0)


class PodStats(_Lenient):
    config_hash: str | None = None
    models: dict[str, PodModelStats] = Field(default_factory=dict)
    budgets: dict[str, PodBudgetStats] = Field(default_factory=dict)


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
    budgets: Mapping[str, Decimal] = field(default_factory=dict)
    config_hashes: tuple[str | None, ...] = ()

    @property
    def pods(self) -> int:
        return len(self.config_hashes)

    def pods_on(self, config_hash: str | None) -> int:
        if not config_hash:
            return 0
        return sum(1 for h in self.config_hashes if h and (h.startswith(config_hash) or config_hash.startswith(h)))


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


def aggregate_pods(pods: Sequence[PodStats]) -> GatewayStats:
    """One gateway: sum counts, cost, rpm and spend; max p95; worst circuit; available if any pod is."""
    per_model: dict[str, list[ModelAggregate]] = {}
    budgets: dict[str, Decimal] = {}
    for pod in pods:
        for name, s in pod.models.items():
            per_model.setdefault(name, []).append(_from_pod(s))
        for name, b in pod.budgets.items():
            budgets[name] = budgets.get(name, Decimal(0)) + b.spent_usd
    return GatewayStats(
        models={name: _merge_models(parts) for name, parts in sorted(per_model.items())},
        budgets=budgets,
        config_hashes=tuple(p.config_hash for p in pods),
    )


def merge_gateways(stats: Iterable[GatewayStats]) -> GatewayStats:
    """Several gateways serving the same models: the same sums, one level up."""
    per_model: dict[str, list[ModelAggregate]] = {}
    budgets: dict[str, Decimal] = {}
    hashes: list[str | None] = []
    for g in stats:
        for name, agg in g.models.items():
            per_model.setdefault(name, []).append(agg)
        for name, spent in g.budgets.items():
            budgets[name] = budgets.get(name, Decimal(0)) + spent
        hashes.extend(g.config_hashes)
    return GatewayStats({n: _merge_models(p) for n, p in sorted(per_model.items())}, budgets, tuple(hashes))


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


def stats_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{STATS_PATH}"


async def fetch_one(client: httpx.AsyncClient, address: str, port: int) -> PodStats | None:
    try:
        resp = await client.get(stats_url(address, port))
        resp.raise_for_status()
        return PodStats.model_validate(orjson.loads(resp.content))
    except (httpx.HTTPError, orjson.JSONDecodeError, ValidationError) as exc:
        log.warning("stats from %s:%d unavailable: %s", address, port, exc)
        return None


async def fetch_all(client: httpx.AsyncClient, endpoints: Sequence[tuple[str, int]]) -> list[PodStats]:
    results = await asyncio.gather(*(fetch_one(client, a, p) for a, p in endpoints))
    return [r for r in results if r is not None]


class StatsCache:
    """The last poll of each gateway, so a model served by several gateways gets their sum."""

    def __init__(self, max_age_s: float, clock: Any = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[float, GatewayStats]] = {}

    def put(self, namespace: str, gateway: str, stats: GatewayStats) -> None:
        self._entries[(namespace, gateway)] = (self._clock(), stats)

    def get(self, namespace: str, gateway: str) -> GatewayStats | None:
        entry = self._entries.get((namespace, gateway))
        if entry is None or self._clock() - entry[0] > self.max_age_s:
            return None
        return entry[1]

    def forget(self, namespace: str, gateway: str) -> None:
        self._entries.pop((namespace, gateway), None)

    def merged(self, namespace: str, gateways: Iterable[str]) -> GatewayStats | None:
        found = [s for g in gateways if (s := self.get(namespace, g)) is not None]
        return merge_gateways(found) if found else None


# ------------------------------------------------------------------------------ status
def percent(ratio: float) -> str:
    return f"{ratio * 100:.2f}%"


def usd(value: Decimal) -> str:
    return str(value.quantize(budget_math.CENT, ROUND_HALF_UP))


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


def budget_live_status(budget: Budget, spent: Decimal | None, now: datetime) -> tuple[dict[str, Any], list[EventSpec]]:
    """Fields of CostBudget.status owned by the stats poller, and threshold Events."""
    if budget.spec is None:
        return {}, []
    spec = budget.spec
    try:
        view = budget_math.evaluate(
            Decimal(str(spec.limit_usd)),
            spent or Decimal(0),
            spec.period,
            spec.time_zone,
            list(spec.alert_thresholds),
            now,
        )
    except (ValueError, KeyError):  # an invalid time zone: reported as Stalled by the reconciler
        return {}, []
    start = budget_math.rfc3339(view.bounds.start)
    previous = budget.status
    already = previous.get("lastAlertThreshold") if previous.get("periodStart") == start else None
    crossed = budget_math.crossed_threshold(view.percent_exact, list(spec.alert_thresholds), already)
    events: list[EventSpec] = []
    if crossed is not None:
        kind: Literal["Normal", "Warning"] = "Warning"
        events.append(
            EventSpec(
                kind,
                "BudgetExceeded" if crossed >= 100 else "BudgetThresholdReached",
                f"{view.percent_used}% of ${spec.limit_usd:g} {spec.period} budget used "
                f"(threshold {crossed}%, spent ${usd(view.spent)}, action {spec.action})",
            )
        )
        already = crossed
    out: dict[str, Any] = {
        "spent": usd(view.spent),
        "remaining": usd(view.remaining),
        "percentUsed": f"{view.percent_used}%",
        "forecast": usd(view.forecast),
        "periodStart": start,
        "periodEnd": budget_math.rfc3339(view.bounds.end),
        "state": view.state,
        "lastUpdated": budget_math.rfc3339(now),
    }
    if already is not None:
        out["lastAlertThreshold"] = already
    return out, events


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
