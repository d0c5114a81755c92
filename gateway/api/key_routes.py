"""API keys over HTTP: admins manage every key (/admin/keys), developers their own (/api/v1/keys).

A created or rotated key's secret is in the response once and never again; the store keeps a
salted hash. Every action is written to the audit trail.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import caller, gateway_of, json_response, read_body_as, request_id
from aimm_gateway.config import LimitValues
from aimm_gateway.errors import Forbidden, GatewayError, NotFound
from aimm_gateway.security.authn import KeyStoreUnavailable
from aimm_gateway.security.identity import Identity, KeyLimits, Role
from aimm_gateway.security.keys import KeyStore, KeyStoreConflict, StoredKey
from aimm_gateway.service import Gateway
from aimm_gateway.state.base import StateUnavailable

# Roles a developer may give keys they create for themselves: never more than their own.
_DEVELOPER_GRANTS = {Role.DEVELOPER, Role.USER, Role.VIEWER}


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=128)
    role: Role = Role.USER
    owner: str | None = Field(None, max_length=128, description="Admins only; developers own what they create.")
    team: str | None = Field(
        None, min_length=1, max_length=63, description="Admins only; a developer's keys carry the developer's team."
    )
    models: list[str] = Field(default_factory=list, max_length=64)
    limits: LimitValues = Field(default_factory=LimitValues)
    budget_usd: Decimal | None = Field(None, gt=0, max_digits=20, description="Spending cap per calendar month (UTC).")
    expires_in_s: float | None = Field(None, gt=0)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_s: float | None = Field(None, ge=0, description="Default: auth.key_store.rotation_overlap_s.")


def _store(gateway: Gateway) -> KeyStore:
    return gateway.auth.key_store(gateway.runtime.config)


async def _owned(store: KeyStore, key_id: str, who: Identity, admin: bool) -> StoredKey:
    record = await store.get(key_id)
    if record is None or (not admin and record.owner != who.name):
        raise NotFound(f"no key {key_id!r}" + ("" if admin else " of yours"))
    return record


async def _create(request: Request, admin: bool) -> Response:
    gateway, who = gateway_of(request), caller(request)
    body = await read_body_as(request, NewKey)
    if not admin and (body.role not in _DEVELOPER_GRANTS or body.owner not in (None, who.name)):
        raise Forbidden("developers may create keys for themselves with role developer, user or viewer")
    if not admin and body.team not in (None, who.team):  # a key in another team would spend its budget
        raise Forbidden("developers' keys carry their own team")
    lim = body.limits
    record, secret = await _store(gateway).create(
        body.name,
        body.role,
        owner=body.owner if admin else who.name,
        models=body.models,
        limits=KeyLimits(lim.requests_per_minute, lim.tokens_per_minute, lim.concurrent_requests),
        expires_at=time.time() + body.expires_in_s if body.expires_in_s else None,
        team=body.team if admin else who.team,
        budget_usd=body.budget_usd,
    )
    _audit(gateway, request, who, "key.create", record)
    return json_response({**record.public(), "key": secret}, status=201)


async def _list(request: Request, admin: bool) -> Response:
    gateway, who = gateway_of(request), caller(request)
    keys = await _store(gateway).keys(None if admin else who.name)
    return json_response({"object": "list", "data": [k.public() for k in keys]})


async def _rotate(request: Request, admin: bool) -> Response:
    gateway, who = gateway_of(request), caller(request)
    store = _store(gateway)
    record = await _owned(store, request.path_params["key_id"], who, admin)
    empty = request.headers.get("content-length") in (None, "0")
    body = Rotation() if empty else await read_body_as(request, Rotation)
    settings = gateway.runtime.config.auth.key_store
    overlap = body.overlap_s if body.overlap_s is not None else (settings.rotation_overlap_s if settings else 0.0)
    rotated = await store.rotate(record.id, overlap)
    if rotated is None:
        raise GatewayError(f"key {record.id!r} is revoked or expired", status=409, code="conflict")
    _audit(gateway, request, who, "key.rotate", rotated[0], overlap_s=overlap)
    return json_response({**rotated[0].public(), "key": rotated[1]})


async def _revoke(request: Request, admin: bool) -> Response:
    gateway, who = gateway_of(request), caller(request)
    store = _store(gateway)
    record = await _owned(store, request.path_params["key_id"], who, admin)
    revoked = await store.revoke(record.id)
    assert revoked is not None
    _audit(gateway, request, who, "key.revoke", revoked)
    return json_response(revoked.public())


def _audit(gateway: Gateway, request: Request, who: Identity, action: str, record: StoredKey, **detail: Any) -> None:
    gateway.security.audit.record(
        action,
        actor=who,
        target=f"key {record.id} ({record.name})",
        request_id=request_id(request),
        role_granted=record.role.value,
        **detail,
    )


def _bind(fn: Any, admin: bool) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await fn(request, admin)
        except StateUnavailable:
            raise KeyStoreUnavailable() from None
        except KeyStoreConflict as exc:
            raise GatewayError(str(exc), status=409, code="conflict") from None
        return response

    endpoint.__name__ = f"{fn.__name__.strip('_')}_{'any' if admin else 'own'}_key"
    return endpoint


routes = [
    Route("/admin/keys", _bind(_create, True), methods=["POST"]),
    Route("/admin/keys", _bind(_list, True), methods=["GET"]),
    Route("/admin/keys/{key_id}/rotate", _bind(_rotate, True), methods=["POST"]),
    Route("/admin/keys/{key_id}", _bind(_revoke, True), methods=["DELETE"]),
    Route("/api/v1/keys", _bind(_create, False), methods=["POST"]),
    Route("/api/v1/keys", _bind(_list, False), methods=["GET"]),
    Route("/api/v1/keys/{key_id}/rotate", _bind(_rotate, False), methods=["POST"]),
    Route("/api/v1/keys/{key_id}", _bind(_revoke, False), methods=["DELETE"]),
]
