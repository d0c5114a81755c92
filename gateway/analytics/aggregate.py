"""Usage aggregates from store rows (pure): per group, top consumers, savings.

Rows are the store's analytics columns (store/sql.py ANALYTICS_COLUMNS). Percentiles are exact
(nearest rank over the group's latencies); money stays in integer units until rendered.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aimm_gateway.state.units import from_units

Row = dict[str, Any]
GROUPS = ("model", "provider", "key", "route", "team", "hour", "day")
CENT4 = Decimal("0.000001")


def _hour(row: Row) -> str:
    return datetime.fromtimestamp(row["ts_ms"] / 1000, UTC).strftime("%Y-%m-%dT%H:00Z")


def _day(row: Row) -> str:
    return datetime.fromtimestamp(row["ts_ms"] / 1000, UTC).strftime("%Y-%m-%d")


KEYS: dict[str, Callable[[Row], str]] = {
    "model": lambda r: r["model"] or "(none)",
    "provider": lambda r: r["provider"] or "(none)",
    "key": lambda r: r["key_name"] or "(anonymous)",
    "route": lambda r: r["route"] or "(direct)",
    "team": lambda r: r["team"] or "(none)",
    "hour": _hour,
    "day": _day,
}


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Group:
    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_units: int = 0
    baseline_units: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.requests += 1
        self.errors += int(row["status"] >= 400)
        self.cache_hits += int(bool(row["cache_hit"]))
        self.prompt_tokens += int(row["prompt_tokens"])
        self.completion_tokens += int(row["completion_tokens"])
        self.cost_units += int(row["cost_units"])
        self.baseline_units += int(row["baseline_units"])
        self.latencies.append(float(row["latency_ms"]))

    def render(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = self.requests or 1
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": str(from_units(self.cost_units).quantize(CENT4)),
            "error_rate": round(self.errors / n, 4),
            "p50_latency_ms": percentile(lat, 0.5),
            "p95_latency_ms": percentile(lat, 0.95),
            "cache_hit_rate": round(self.cache_hits / n, 4),
            "savings_usd": str(from_units(max(0, self.baseline_units - self.cost_units)).quantize(CENT4)),
        }


def aggregate(rows: Iterable[Row], group_by: str) -> list[dict[str, Any]]:
    """One entry per group value, sorted by the group (time groups) or by cost (the others)."""
    if group_by not in KEYS:
        raise ValueError(f"group_by: choose one of {', '.join(GROUPS)}")
    key = KEYS[group_by]
    groups: dict[str, Group] = {}
    for row in rows:
        groups.setdefault(key(row), Group()).add(row)
    out = [{group_by: name, **g.render()} for name, g in groups.items()]
    if group_by in ("hour", "day"):
        return sorted(out, key=lambda e: e[group_by])
    return sorted(out, key=lambda e: (-Decimal(e["cost_usd"]), e[group_by]))


def totals(rows: Iterable[Row]) -> dict[str, Any]:
    g = Group()
    for row in rows:
        g.add(row)
    return g.render()


def top_consumers(rows: Iterable[Row], by: str = "key", limit: int = 10) -> list[dict[str, Any]]:
    if by not in ("key", "team", "route", "model"):
        raise ValueError("by: choose one of key, team, route, model")
    return aggregate(rows, by)[:limit]


def savings(rows: Iterable[Row]) -> dict[str, str]:
    """Spend compared with sending every request to its route's most expensive target, uncached."""
    actual = baseline = cache = 0
    for row in rows:
        actual += int(row["cost_units"])
        baseline += int(row["baseline_units"])
        if row["cache_hit"]:
            cache += int(row["baseline_units"])
    saved = max(0, baseline - actual)
    return {
        "baseline_usd": str(from_units(baseline).quantize(CENT4)),
        "actual_usd": str(from_units(actual).quantize(CENT4)),
        "saved_usd": str(from_units(saved).quantize(CENT4)),
        "saved_by_cache_usd": str(from_units(cache).quantize(CENT4)),
        "saved_by_routing_usd": str(from_units(max(0, saved - cache)).quantize(CENT4)),
    }


CSV_FIELDS = (
    "requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "error_rate",
    "p50_latency_ms", "p95_latency_ms", "cache_hit_rate", "savings_usd",
)  # fmt: skip


def to_csv(entries: Sequence[dict[str, Any]], group_by: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow((group_by, *CSV_FIELDS))
    for e in entries:
        writer.writerow((e[group_by], *("" if e[f] is None else e[f] for f in CSV_FIELDS)))
    return buf.getvalue()
