"""One `/api/v1/stats` document from every worker's own, so the operator's poll sees the whole pod.

Each model's figures add up as `merge_rules` says (sums, rate-weighted error rate, the slowest
worker's p95 as an upper bound, worst circuit, available if any worker can serve it). A pod
whose workers disagree on the config hash (mid-reload) reports a hash no config has,
so it is not counted as serving the current one until they all agree.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from aimm_gateway.merge_rules import merge_figures


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
    errors = [p["last_error"] for p in parts if p["last_error"]]
    return {**merge_figures(parts), "last_error": errors[0] if errors else None}
