"""Build the process's state store from config: Redis when `state.redis` is set, else in-process."""

from __future__ import annotations

from aimm_gateway.config import ConfigError, StateSettings
from aimm_gateway.state.base import StateStore
from aimm_gateway.state.memory import MemoryState


def build_state(settings: StateSettings) -> StateStore:
    if settings.redis is None:
        return MemoryState(cache_max_bytes=settings.cache_max_bytes)
    url = settings.redis.url.resolve()
    if url is None:
        raise ConfigError(f"state.redis.url: {settings.redis.url.describe()} is not set")
    from aimm_gateway.state.redis import RedisState  # only a fleet needs the client library loaded

    return RedisState(url, settings.redis.timeout_ms, settings.redis.key_prefix)
