"""The key store of a fleet: records in one Redis hash, shared by every worker and replica.

Layout (under `state.redis.key_prefix`): the hash `{apikeys}` maps key id -> the record's JSON
(the same record the file store writes: salted scrypt hashes only), and `{apikeys}:v` counts
changes. Every write is one Lua script: compare the stored JSON with what the writer read, set,
bump the counter (so concurrent rotate/revoke on two replicas cannot undo each other). Each
process checks the counter at most every `sync_interval_s` (1 s) when a store key is used and
re-reads the hash only when it moved: a revocation, expiry or the end of a rotation overlap made
on any process is enforced everywhere within that bound. A key id not in the view is read at
once (one HGET), so a key created on one replica works on every other immediately.

Redis unreachable: the last view keeps verifying the keys it holds (counted in
`ai_multimodel_state_unavailable_total{user="key_store"}`), a key id it has never seen and every
admin action get 503, and nothing waits longer than `state.redis.timeout_ms`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from aimm_gateway.config import RedisSettings
from aimm_gateway.security.keys import KeyStore, StoredKey, Token, from_json, to_json
from aimm_gateway.state.base import StateUnavailable
from aimm_gateway.state.redis import bounded, connect

log = logging.getLogger("aimm.security")

# KEYS: hash, version. ARGV: id, expected JSON ("" = absent), new JSON. 1 = written, 0 = changed meanwhile.
_CAS = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
"""
# KEYS: hash, version. ARGV: the version the caller holds. {version} when unchanged, else {version, hash...}.
_SNAPSHOT = """
local version = redis.call('GET', KEYS[2]) or '0'
if version == ARGV[1] then return {version} end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, version)
return out
"""
_SNAPSHOT_MIN_TIMEOUT_S = 1.0  # a full re-read moves every record: allow more than one counter read


class RedisKeyStore(KeyStore):
    def __init__(
        self,
        settings: RedisSettings,
        on_unavailable: Callable[[], None] = lambda: None,
        sync_interval_s: float = 1.0,
    ) -> None:
        super().__init__(sync_interval_s=sync_interval_s)
        url = settings.url.resolve()
        if url is None:
            raise StateUnavailable(f"state.redis.url: {settings.url.describe()} is not set")
        self._timeout = settings.timeout_ms / 1000
        self._redis = connect(url, self._timeout, max_connections=32)
        self._hash = settings.key_prefix + "{apikeys}"  # hash tag: both keys in one cluster slot
        self._version_key = self._hash + ":v"
        self._version = b""  # never a real version: the first sync reads everything
        self._cas = self._redis.register_script(_CAS)
        self._snapshot = self._redis.register_script(_SNAPSHOT)
        self._on_unavailable = on_unavailable

    async def _load_all(self) -> None:
        timeout = max(self._timeout, _SNAPSHOT_MIN_TIMEOUT_S)
        try:
            out: list[Any] = await bounded(
                self._snapshot(keys=[self._hash, self._version_key], args=[self._version]), timeout
            )
        except StateUnavailable as exc:
            self._on_unavailable()  # keep serving the last view; the next use tries again
            log.warning("key store: %s; verifying with the last known keys", exc)
            return
        if len(out) > 1:
            pairs = out[1:]
            self._keys = {pairs[i].decode(): _decode(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        self._version = out[0]

    async def _fetch(self, kid: str) -> tuple[StoredKey | None, Token]:
        found = await bounded(self._redis.hget(self._hash, kid), self._timeout)
        raw = found.encode() if isinstance(found, str) else found
        record = _decode(raw) if raw is not None else None
        if record is not None:
            self._keys[kid] = record
        return record, raw or b""

    async def _commit(self, kid: str, token: Token, record: StoredKey) -> bool:
        blob = orjson.dumps(to_json(record))
        expected = token if isinstance(token, bytes) else b""  # _fetch's token: the stored JSON
        call = self._cas(keys=[self._hash, self._version_key], args=[kid, expected, blob])
        return bool(await bounded(call, self._timeout))

    async def close(self) -> None:
        await self._redis.aclose()


def _decode(raw: bytes) -> StoredKey:
    return from_json(orjson.loads(raw))
