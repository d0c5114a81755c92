"""The response cache on the state layer (in-process LRU, or Redis for the fleet)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from aimm_gateway.budget.metrics import CostMetrics
from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.state.base import StateStore, StateUnavailable
from aimm_gateway.state.memory import MemoryState

log = logging.getLogger("aimm.cache")


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    model: str  # the gateway model that produced it
    provider: str
    answer: ChatCompletion


class ResponseCache:
    def __init__(self, state: StateStore, metrics: CostMetrics) -> None:
        self._state = state
        self._metrics = metrics
        self.in_process = isinstance(state, MemoryState)  # a store never waits (no round trip)

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            raw = await self._state.cache_get(key)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("cache", "open").inc()
            raw = None
        if raw is None:
            self._metrics.cache.labels("miss").inc()
            return None
        data = orjson.loads(raw)
        self._metrics.cache.labels("hit").inc()
        return CachedAnswer(data["model"], data["provider"], data["answer"])

    async def get_index(self, scope: str) -> bytes | None:
        """The semantic index of one scope (semantic.py), raw."""
        try:
            return await self._state.cache_get(scope)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("cache", "open").inc()
            return None

    async def put_index(self, scope: str, raw: bytes, ttl_s: float) -> None:
        try:
            await self._state.cache_set(scope, raw, ttl_s)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("cache", "open").inc()

    async def put(self, key: str, entry: CachedAnswer, ttl_s: float, max_bytes: int) -> bool:
        raw = orjson.dumps({"model": entry.model, "provider": entry.provider, "answer": entry.answer})
        if len(raw) > max_bytes:
            return False
        try:
            await self._state.cache_set(key, raw, ttl_s)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("cache", "open").inc()
            return False
        self._metrics.cache.labels("store").inc()
        return True
