"""JWT/OIDC: real keys from `cryptography`, a real JWKS served over HTTP on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aimm_gateway.config import JwtSettings
from aimm_gateway.security.identity import Role
from aimm_gateway.security.jwt_auth import JwtRejected, JwtVerifier, looks_like_jwt
from tests.servers import run_asgi_app

ISS, AUD = "https://idp.example", "aimm"


class Idp:
    """Signing keys plus the JWKS document a real identity provider would publish."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.served = 0
        self.add("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def add(self, kid: str, key: Any) -> None:
        self.keys[kid] = key

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            alg = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
            jwk = json.loads(alg.to_jwk(key.public_key()))
            jwk["kid"] = kid
            out.append(jwk)
        return {"keys": out}

    def token(self, kid: str = "rsa-1", **claims: Any) -> str:
        key = self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        base = {"iss": ISS, "aud": AUD, "sub": "alice@example.com", "exp": int(time.time()) + 300, "groups": ["eng"]}
        return jwt.encode({**base, **claims}, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[tuple[Idp, str]]:
    provider = Idp()

    async def jwks(request: Request) -> JSONResponse:
        provider.served += 1
        return JSONResponse(provider.jwks())

    with run_asgi_app(Starlette(routes=[Route("/jwks", jwks)])) as url:
        yield provider, f"{url}/jwks"


def _settings(url: str, **over: Any) -> JwtSettings:
    base: dict[str, Any] = {
        "issuer": ISS,
        "audience": AUD,
        "jwks_url": url,
        "role_claim": "groups",
        "role_map": {"eng": "developer", "ops": "admin", "readers": "viewer"},
    }
    return JwtSettings.model_validate({**base, **over})


async def test_valid_token_maps_claims_to_identity_and_caches_jwks(idp: tuple[Idp, str]) -> None:
    provider, url = idp
    async with httpx.AsyncClient() as client:
        verifier = JwtVerifier(_settings(url), client)
        token = provider.token()
        assert looks_like_jwt(token)
        ident = await verifier.verify(token)
        assert ident.name == "alice@example.com" and ident.role is Role.DEVELOPER and ident.source == "jwt"
        admin = await verifier.verify(provider.token(groups=["readers", "ops"]))
        assert admin.role is Role.ADMIN  # the strongest mapped role wins
        assert provider.served == 1  # fetched once, then cached


async def test_rejections(idp: tuple[Idp, str]) -> None:
    provider, url = idp
    async with httpx.AsyncClient() as client:
        verifier = JwtVerifier(_settings(url), client)
        bad = [
            provider.token(exp=int(time.time()) - 3600),
            provider.token(aud="someone-else"),
            provider.token(iss="https://evil.example"),
            provider.token(groups=["unknown"]),
        ]
        for token in bad:
            with pytest.raises(JwtRejected):
                await verifier.verify(token)
        # Signed by a key the IdP never published.
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(
            {"iss": ISS, "aud": AUD, "sub": "x", "exp": int(time.time()) + 60},
            stranger,
            "RS256",
            headers={"kid": "rsa-1"},
        )
        with pytest.raises(JwtRejected, match="invalid token"):
            await verifier.verify(forged)
        # alg=none and HS256 (key confusion) are not in the allow-list.
        none_token = jwt.encode(
            {"iss": ISS, "aud": AUD, "sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none"
        )
        with pytest.raises(JwtRejected):
            await verifier.verify(none_token)
        hs = jwt.encode({"iss": ISS, "aud": AUD, "sub": "x", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256")
        with pytest.raises(JwtRejected, match="algorithm"):
            await verifier.verify(hs)


async def test_default_role_and_key_rotation_refetch(idp: tuple[Idp, str]) -> None:
    provider, url = idp
    now = [0.0]
    async with httpx.AsyncClient() as client:
        verifier = JwtVerifier(_settings(url, default_role="user"), client, clock=lambda: now[0])
        assert (await verifier.verify(provider.token(groups=[]))).role is Role.USER
        provider.add("ec-2", ec.generate_private_key(ec.SECP256R1()))
        now[0] += 31  # past the minimum refetch interval, well within the cache TTL
        ident = await verifier.verify(provider.token(kid="ec-2"))
        assert ident.role is Role.DEVELOPER and provider.served == 2


async def test_team_claim_maps_to_identity_team(idp: tuple[Idp, str]) -> None:
    provider, url = idp
    async with httpx.AsyncClient() as client:
        by_groups = JwtVerifier(_settings(url, team_claim="groups"), client)
        assert (await by_groups.verify(provider.token(groups=["eng", "ops"]))).team == "eng"  # a list: its first
        by_team = JwtVerifier(_settings(url, team_claim="team"), client)
        assert (await by_team.verify(provider.token(team="payments"))).team == "payments"
        assert (await by_team.verify(provider.token())).team is None  # claim absent: no team
        assert (await JwtVerifier(_settings(url), client).verify(provider.token(team="x"))).team is None  # unset
