"""Who is calling: one `Identity` from the admin token, a config key, the key store or a JWT.

Config keys and the admin token are found by the SHA-256 of the presented value (a dict
lookup: O(1), and nothing about a key leaks through timing of a hash-keyed lookup). Store keys
go through `KeyStore.verify`; JWTs through `JwtVerifier`. Failures are counted, audited and
throttled per client IP: past `limits.auth_failures_per_minute`, a client gets 429 instead of
401, and the expensive checks (scrypt) are not even attempted.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING

from aimm_gateway.config import GatewayConfig
from aimm_gateway.errors import GatewayError, RateLimited, Unauthorized, format_retry_after
from aimm_gateway.runtime import Runtime
from aimm_gateway.security.audit import AuditLog
from aimm_gateway.security.identity import Identity, Role
from aimm_gateway.security.keys import FileKeyStore, KeyStore, split_key
from aimm_gateway.security.metrics import SecurityMetrics
from aimm_gateway.state.base import StateStore, StateUnavailable, WindowCounter

if TYPE_CHECKING:  # PyJWT, cryptography and httpx load only where auth.jwt is set (~20 MB per worker)
    import httpx

    from aimm_gateway.security.jwt_auth import JwtVerifier

ADMIN_TOKEN = Identity(name="admin-token", role=Role.ADMIN, source="admin_token")


class KeyStoreUnavailable(GatewayError, status=503, type="service_unavailable", code="key_store_unavailable"):
    """The shared key store (Redis) did not answer for a key this process has not seen yet."""

    def __init__(self) -> None:
        super().__init__("the API key store is unavailable; retry shortly", headers={"retry-after": "1"})


class Authenticator:
    """One per process; follows config reloads (key store path, JWT settings) lazily."""

    def __init__(self, state: StateStore, audit: AuditLog, metrics: SecurityMetrics) -> None:
        self._state = state
        self.audit = audit
        self._metrics = metrics
        self._store: KeyStore | None = None
        self._store_backend: object = None
        self._closing: list[KeyStore] = []
        self._jwt: JwtVerifier | None = None
        self._jwt_key: object = None
        self._http: httpx.AsyncClient | None = None
        # Credentials that matched the admin token or a config key, as presented, and the runtime
        # snapshot they matched in (see `known`).
        self._seen: tuple[Runtime | None, dict[str, Identity]] = (None, {})

    # -- sources that follow the config ---------------------------------------------------------

    def key_store(self, config: GatewayConfig) -> KeyStore:
        """Redis when `state.redis` is set (every worker and replica shares the keys), else the file
        of `auth.key_store.path`, else memory (keys last until restart). One per setting."""
        settings = config.auth.key_store
        backend: object = config.state.redis or (settings.path if settings is not None else None)
        if self._store is None or backend != self._store_backend:
            if self._store is not None:
                self._closing.append(self._store)  # requests in flight may still hold it
            self._store, self._store_backend = self._open_store(config), backend
        return self._store

    def _open_store(self, config: GatewayConfig) -> KeyStore:
        if config.state.redis is not None:
            from aimm_gateway.security.keys_redis import RedisKeyStore  # only a fleet loads the client

            unavailable = self._metrics.state_unavailable.labels("key_store", "open")
            return RedisKeyStore(config.state.redis, on_unavailable=unavailable.inc)
        settings = config.auth.key_store
        path = settings.path if settings is not None else None
        return FileKeyStore(Path(path) if path else None)

    def _jwt_verifier(self, config: GatewayConfig) -> JwtVerifier | None:
        settings = config.auth.jwt
        if settings is None:
            return None
        if self._jwt is None or settings != self._jwt_key:
            import httpx

            from aimm_gateway.security.jwt_auth import JwtVerifier

            self._http = self._http or httpx.AsyncClient()
            self._jwt, self._jwt_key = JwtVerifier(settings, self._http), settings
        return self._jwt

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        for store in [*self._closing, *([self._store] if self._store is not None else [])]:
            await store.close()
        self._closing.clear()

    # -- the check --------------------------------------------------------------------------------

    def known(self, rt: Runtime, credential: str | None) -> Identity | None:
        """What `identify` returned for `credential` when it matched the admin token or a config key
        of this very runtime snapshot; None: `identify` must run. Saves the SHA-256 of every request
        (~0.7 µs with its lookup). Both live only in the snapshot, so a reload (a key removed or
        changed) starts afresh: the first request with the new snapshot misses. Store keys and JWTs
        are never remembered here: they can be revoked or expire without a new snapshot. At most
        one entry per config key and admin token (only matches are remembered). A lookup by the
        presented value compares strings only after a full match of their hash, which is salted
        per process: its timing says nothing about a key, as the digest's lookup did."""
        runtime, seen = self._seen
        if runtime is not rt or not credential:
            return None
        return seen.get(credential)

    def _remember(self, rt: Runtime, credential: str, identity: Identity) -> Identity:
        if self._seen[0] is not rt:
            self._seen = (rt, {})
        self._seen[1][credential] = identity
        return identity

    async def identify(self, rt: Runtime, credential: str | None, ip: str, request_id: str) -> Identity:
        if not credential:
            await self._fail(rt, ip, "missing", request_id)
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(credential.encode()).digest()
        if rt.admin_token_digest is not None and hmac.compare_digest(rt.admin_token_digest, digest):
            return self._remember(rt, credential, ADMIN_TOKEN)
        name = rt.api_keys.get(digest)  # config keys: a dict lookup by digest, O(1)
        if name is not None:
            return self._remember(rt, credential, rt.identities[name])
        found = await self._other_sources(rt, credential, ip, request_id)
        if found is not None:
            return found
        await self._fail(rt, ip, "invalid", request_id)
        raise Unauthorized("invalid API key")

    async def _other_sources(self, rt: Runtime, credential: str, ip: str, request_id: str) -> Identity | None:
        store = self.key_store(rt.config)
        if split_key(credential) is not None:
            if store.needs_hash(credential):
                await self._throttled(rt, ip, amount=0)  # don't run scrypt for a client already over
            try:
                record = await store.verify(credential)
            except StateUnavailable:
                self._metrics.state_unavailable.labels("key_store", "closed").inc()
                raise KeyStoreUnavailable() from None
            return record.identity() if record is not None else None
        verifier = self._jwt_verifier(rt.config)
        return await self._jwt_identity(verifier, rt, credential, ip, request_id) if verifier is not None else None

    async def _jwt_identity(
        self, verifier: JwtVerifier, rt: Runtime, credential: str, ip: str, request_id: str
    ) -> Identity | None:
        from aimm_gateway.security.jwt_auth import JwtRejected, looks_like_jwt  # loaded with the verifier

        if not looks_like_jwt(credential):
            return None
        try:
            return await verifier.verify(credential)
        except JwtRejected as exc:
            await self._fail(rt, ip, "expired" if "expired" in str(exc) else "invalid", request_id, str(exc))
            raise Unauthorized(str(exc)) from None

    async def _fail(self, rt: Runtime, ip: str, reason: str, request_id: str, detail: str = "") -> None:
        self._metrics.auth_failed(reason)
        self.audit.record(
            "auth.failure", outcome="denied", request_id=request_id, client_ip=ip, reason=detail or reason
        )
        await self._throttled(rt, ip, amount=1)

    async def _throttled(self, rt: Runtime, ip: str, amount: int) -> None:
        """429 once this IP is past its failed-authentication allowance this minute."""
        limit = rt.config.limits.auth_failures_per_minute
        # amount=0 only reads: allowed while count <= limit - 1, i.e. still under the limit.
        counter = WindowCounter(f"authfail:{ip}", amount, limit if amount else limit - 1, 60.0)
        try:
            (decision,) = await self._state.hit_many([counter])
        except StateUnavailable:
            self._metrics.state_unavailable.labels("auth_throttle", "open").inc()
            return  # never lock everyone out because Redis is down
        if not decision.allowed:
            self._metrics.limited("requests")
            raise RateLimited(
                "too many failed authentication attempts from this address; retry later",
                headers={"retry-after": format_retry_after(decision.reset_s)},
            )
