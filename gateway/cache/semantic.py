"""Semantic cache index (pure): remembered prompt embeddings per model/route and parameters.

A request's *scope* is everything but its messages (model or route, sampling parameters, tools):
only answers given under the same scope may be reused. Within a scope, the index keeps the last
`max_entries` prompts' embeddings with the exact cache key of their answer; a new prompt whose
cosine similarity to one of them reaches the threshold reuses that answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from aimm_gateway.cache.keys import cache_key

Entry = tuple[str, list[float]]  # (exact cache key of the answer, embedding)


def scope_key(requested: str, body: Mapping[str, Any]) -> str:
    return "sem:" + cache_key(requested, {k: v for k, v in body.items() if k != "messages"})


def prompt_text(body: Mapping[str, Any]) -> str:
    """The conversation as text: what the embedding compares."""
    lines = []
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        lines.append(f"{message.get('role', '')}: {content or ''}")
    return "\n".join(lines)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def decode(raw: bytes | None) -> list[Entry]:
    return [(key, vector) for key, vector in orjson.loads(raw)] if raw else []


def encode(entries: list[Entry]) -> bytes:
    return orjson.dumps(entries)


def nearest(entries: list[Entry], vector: Sequence[float], threshold: float) -> tuple[str, float] | None:
    """The most similar remembered prompt at or above the threshold: (its answer's key, similarity)."""
    best: tuple[str, float] | None = None
    for key, known in entries:
        score = cosine(vector, known)
        if score >= threshold and (best is None or score > best[1]):
            best = (key, score)
    return best


def remember(entries: list[Entry], key: str, vector: list[float], max_entries: int) -> list[Entry]:
    kept = [e for e in entries if e[0] != key]
    kept.append((key, vector))
    return kept[-max_entries:]
