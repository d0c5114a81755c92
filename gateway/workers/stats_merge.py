"""One `/api/v1/stats` document from every worker's own, so the operator's poll sees the whole pod.

Counts, rates and spend add up; the error rate is weighted by each worker's request rate; p95
cannot be merged from percentiles, so the slowest worker's p95 is reported (an upper bound);
a model's circuit is as bad as its worst worker's and it is available if any worker can serve
it. A pod whose workers disagree on the config hash (mid-reload) reports a hash no config has,
so it is not counted as serving the current one until they all agree.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

_CIRCUIT_RANK = {"closed": 0, "half_open": 1, "open": 2}


def merge_stats(bodies: dict[int, bytes], pids: dict[int, int]) -> bytes:
    docs = [orjson.loads(bodies[i]) for i in sorted(bodies)]
    hashes = sorted({d["config_hash"] for d in docs})
    models: dict[str, list[dict[str, Any]]] = {}
    budgets: dict[str, Decimal] = {}
    for doc in docs:
        for name, model in doc["models"].items():
            models.setdefault(name, []).append(model)
        for name, budget in doc.get("budgets", {}).items():
            budgets[name] = budgets.get(name, Decimal(0)) + Decimal(budget["spent_usd"])
    merged = {
        "config_hash": hashes[0] if len(hashes) == 1 else "mixed:" + ",".join(hashes),
        "models": {name: _merge_model(parts) for name, parts in models.items()},
        "budgets": {name: {"spent_usd": str(spent)} for name, spent in budgets.items()},
    }
    return orjson.dumps(merged)


def _merge_model(parts: list[dict[str, Any]]) -> dict[str, Any]:
    rpm = sum(p["requests_per_minute"] for p in parts)
    p95s = [p["p95_latency_ms"] for p in parts if p["p95_latency_ms"] is not None]
    errors = [p["last_error"] for p in parts if p["last_error"]]
    return {
        "requests_total": sum(p["requests_total"] for p in parts),
        "errors_total": sum(p["errors_total"] for p in parts),
        "requests_per_minute": rpm,
        "error_rate": sum(p["error_rate"] * p["requests_per_minute"] for p in parts) / rpm if rpm else 0.0,
        "p95_latency_ms": max(p95s) if p95s else None,
        "cost_usd_total": str(sum((Decimal(p["cost_usd_total"]) for p in parts), Decimal(0))),
        "circuit_state": max((p["circuit_state"] for p in parts), key=lambda s: _CIRCUIT_RANK.get(s, 0)),
        "last_error": errors[0] if errors else None,
        "available": any(p["available"] for p in parts),
    }
