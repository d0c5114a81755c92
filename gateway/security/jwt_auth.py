"""OIDC bearer tokens: verify a JWT against the issuer's JWKS and map a claim to a role.

PyJWT does the cryptography and the claim checks (signature, exp/nbf/iat with leeway, iss,
aud, allowed algorithms only). The JWKS is fetched with httpx (async, so the event loop never
blocks on the identity provider), cached for `jwks_cache_s`, and re-fetched early at most once
per `_REFETCH_MIN_S` when a token names a key id we don't have (the provider rotated keys).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from aimm_gateway.config import JwtSettings
from aimm_gateway.security.identity import Identity, Role

_REFETCH_MIN_S = 30.0


class JwtRejected(Exception):
    """The token is not acceptable; the message is safe to show the caller."""


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


class JwksCache:
    def __init__(self, url: str, ttl_s: float, client: httpx.AsyncClient, clock: Callable[[], float]) -> None:
        self._url = url
        self._ttl_s = ttl_s
        self._client = client
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e18
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = self._clock()
        stale = now - self._fetched_at > self._ttl_s
        missing = kid not in self._keys if kid is not None else not self._keys
        if stale or (missing and now - self._fetched_at > _REFETCH_MIN_S):
            await self._fetch()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise JwtRejected("token signed with an unknown key")
        return found

    async def _fetch(self) -> None:
        async with self._lock:
            try:
                resp = await self._client.get(self._url, timeout=5.0)
                resp.raise_for_status()
                keyset = jwt.PyJWKSet.from_dict(resp.json())
            except (httpx.HTTPError, jwt.PyJWKSetError, ValueError) as exc:
                if not self._keys:
                    raise JwtRejected("identity provider keys unavailable") from exc
                return  # keep serving the keys we have
            self._keys = {k.key_id or "": k for k in keyset.keys}
            self._fetched_at = self._clock()
            self.fetches += 1


class JwtVerifier:
    def __init__(
        self, settings: JwtSettings, client: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._s = settings
        self._jwks = JwksCache(settings.jwks_url, settings.jwks_cache_s, client, clock)

    @property
    def jwks(self) -> JwksCache:
        return self._jwks

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise JwtRejected("malformed token") from exc
        if header.get("alg") not in self._s.algorithms:
            raise JwtRejected("token algorithm not allowed")
        key = await self._jwks.key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=self._s.algorithms,
                audience=self._s.audience,
                issuer=self._s.issuer,
                leeway=self._s.leeway_s,
                options={"require": ["exp", "iss", "aud", self._s.subject_claim]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise JwtRejected("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise JwtRejected(f"invalid token: {type(exc).__name__}") from exc
        name = str(claims[self._s.subject_claim])
        return Identity(name=name, role=self._role(claims), source="jwt", team=self._team(claims))

    def _team(self, claims: dict[str, Any]) -> str | None:
        """The team claim's value (a list, e.g. `groups`: its first string); None when absent."""
        if self._s.team_claim is None:
            return None
        raw = claims.get(self._s.team_claim)
        values = raw if isinstance(raw, list) else [raw]
        return next((v for v in values if isinstance(v, str) and v), None)

    def _role(self, claims: dict[str, Any]) -> Role:
        raw = claims.get(self._s.role_claim)
        values = raw if isinstance(raw, list) else [raw] if raw is not None else []
        mapped = [self._s.role_map[v] for v in values if isinstance(v, str) and v in self._s.role_map]
        if mapped:
            return max(mapped, key=_RANK.__getitem__)  # several groups: the strongest role wins
        if self._s.default_role is not None:
            return self._s.default_role
        raise JwtRejected("token carries no role this gateway knows")


_RANK = {Role.VIEWER: 0, Role.USER: 1, Role.DEVELOPER: 2, Role.ADMIN: 3}
