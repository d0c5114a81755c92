"""How one process's live figures add up with other processes' (workers of a pod, pods of a fleet).

Counts, rates and spend add up; an error rate is weighted by each part's request rate; a latency
percentile cannot be merged from percentiles, so the slowest part's is taken (an upper bound on
the merged one: the fleet's q-quantile is never above every part's); a circuit is as bad as its
worst part's, and a model is available if any part can serve it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

CIRCUIT_RANK = {"closed": 0, "half_open": 1, "open": 2}
_SUMMED = frozenset(
    {"requests_total", "errors_total", "requests_per_minute", "requests_per_second", "requests_per_second_window"}
)
_MONEY = frozenset({"cost_usd_total", "cost_per_hour_usd", "spend_usd_total"})  # Decimal strings
_SLOWEST = frozenset({"p50_latency_ms", "p95_latency_ms", "p99_latency_ms"})
# An error rate and the request rate that weighs it, as named in each document.
_RATE_WEIGHTS = {"error_rate": ("requests_per_minute", "requests_per_second_window")}


def merge_figures(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One document from several processes' documents of the same shape (keys of the first)."""
    merged: dict[str, Any] = {}
    for key, first in parts[0].items():
        values = [p.get(key) for p in parts]
        if key in _SUMMED:
            merged[key] = sum(v or 0 for v in values)
        elif key in _MONEY:
            merged[key] = str(sum((Decimal(v) for v in values if v is not None), Decimal(0)))
        elif key in _SLOWEST:
            merged[key] = slowest(values)
        elif key in _RATE_WEIGHTS:
            merged[key] = weighted_rate(parts, key)
        elif key == "latency_ms" and isinstance(first, Mapping):
            merged[key] = {q: slowest([(p.get(key) or {}).get(q) for p in parts]) for q in first}
        elif key == "circuit_state":
            merged[key] = max((v for v in values if v), key=lambda s: CIRCUIT_RANK.get(s, 0), default=first)
        elif key == "available":
            merged[key] = any(values)
        else:
            merged[key] = first
    return merged


def slowest(values: Sequence[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def weighted_rate(parts: Sequence[Mapping[str, Any]], key: str) -> float:
    weight_key = next((w for w in _RATE_WEIGHTS[key] if w in parts[0]), None)
    if weight_key is None:
        return float(max((p.get(key) or 0.0) for p in parts))
    total = sum(p.get(weight_key) or 0 for p in parts)
    if not total:
        return 0.0
    return float(sum((p.get(key) or 0.0) * (p.get(weight_key) or 0) for p in parts) / total)
