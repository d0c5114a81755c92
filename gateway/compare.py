"""Compare several models' answers to one prompt (for /api/v1/query/multiple)."""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def agreement_score(texts: list[str]) -> float | None:
    """Mean pairwise word-set Jaccard similarity: 1.0 when all answers use the same words."""
    if len(texts) < 2:
        return None
    sets = [words(t) for t in texts]
    pairs = list(combinations(sets, 2))
    return round(sum(jaccard(a, b) for a, b in pairs) / len(pairs), 4)


def compare(results: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in results if "error" not in r]
    if not ok:
        return {"succeeded": 0, "failed": len(results), "agreement_score": None}
    fastest = min(ok, key=lambda r: r["latency_ms"])
    cheapest = min(ok, key=lambda r: r["usage"]["total_cost"])
    return {
        "succeeded": len(ok),
        "failed": len(results) - len(ok),
        "fastest_model": fastest["model"],
        "cheapest_model": cheapest["model"],
        "latency_ms": {r["model"]: r["latency_ms"] for r in ok},
        "cost_usd": {r["model"]: r["usage"]["total_cost"] for r in ok},
        "total_tokens": {r["model"]: r["usage"]["total_tokens"] for r in ok},
        "agreement_score": agreement_score([r["text"] for r in ok]),
    }
