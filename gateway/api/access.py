"""Every route's required permission, in one table, enforced by one wrapper.

`protect` wraps each route's endpoint: it resolves the caller's `Identity` (401/429 when that
fails), checks the route's permission (403), and leaves the identity in the request's state
(`common.request_state`). A route missing from `ACCESS` makes `protect` raise at start-up:
nothing is left open by accident. The role each permission needs is `identity.ROLE_PERMISSIONS`;
docs/security.md has the table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aimm_gateway.api.common import bearer, gateway_of, header, peer, request_state
from aimm_gateway.errors import Forbidden, NotFound, Unauthorized
from aimm_gateway.security.client_ip import client_ip
from aimm_gateway.security.identity import ANONYMOUS, Identity, Permission, Role
from aimm_gateway.security.request_ids import valid_request_id

P = Permission
ACCESS: dict[tuple[str, str], Permission] = {
    ("/health", "GET"): P.PUBLIC,
    ("/ready", "GET"): P.PUBLIC,
    ("/metrics", "GET"): P.PUBLIC,  # Prometheus scrapes without credentials; counters only, no texts
    ("/openapi.json", "GET"): P.PUBLIC,  # the API's description: no data
    ("/api/v1/ws", "GET"): P.READ,  # a WebSocket: not wrapped by `protect`, ws_routes.identify checks this entry
    ("/console", "GET"): P.PUBLIC,  # the console's page and assets hold no data
    ("/console/{name}", "GET"): P.PUBLIC,
    ("/console/session", "GET"): P.PUBLIC,  # resolves the caller's own key itself (any role; 401 without)
    ("/v1/chat/completions", "POST"): P.QUERY,
    ("/v1/embeddings", "POST"): P.QUERY,
    ("/v1/models", "GET"): P.QUERY,  # SDKs list models before querying
    ("/v1/messages", "POST"): P.QUERY,
    ("/v1/messages/count_tokens", "POST"): P.QUERY,
    ("/api/v1/query", "POST"): P.QUERY,
    ("/api/v1/query/multiple", "POST"): P.QUERY,
    ("/api/v1/query/stream", "POST"): P.QUERY,
    ("/api/v1/batch", "POST"): P.QUERY,
    ("/api/v1/feedback", "POST"): P.QUERY,
    ("/api/v1/models", "GET"): P.READ,
    ("/api/v1/metrics", "GET"): P.READ,
    ("/api/v1/stats", "GET"): P.READ,
    ("/api/v1/analytics/usage", "GET"): P.READ,
    ("/api/v1/analytics/top", "GET"): P.READ,
    ("/api/v1/analytics/report", "GET"): P.READ,
    ("/api/v1/budgets", "GET"): P.READ,
    ("/api/v1/keys", "GET"): P.OWN_KEYS,
    ("/api/v1/keys", "POST"): P.OWN_KEYS,
    ("/api/v1/keys/{key_id}/rotate", "POST"): P.OWN_KEYS,
    ("/api/v1/keys/{key_id}", "DELETE"): P.OWN_KEYS,
    ("/admin/models", "POST"): P.ADMIN,
    ("/admin/models/status", "GET"): P.ADMIN,
    ("/admin/models/{name}", "PATCH"): P.ADMIN,
    ("/admin/models/{name}/api-key", "PUT"): P.ADMIN,
    ("/admin/keys", "GET"): P.ADMIN,
    ("/admin/keys", "POST"): P.ADMIN,
    ("/admin/keys/{key_id}/rotate", "POST"): P.ADMIN,
    ("/admin/keys/{key_id}", "DELETE"): P.ADMIN,
    ("/admin/audit", "GET"): P.ADMIN,
}

# Routes a config may open to callers without credentials, and the flag that does it.
# The operator polls both feeds of every pod.
OPEN_IF_CONFIGURED: dict[tuple[str, str], str] = {
    ("/api/v1/stats", "GET"): "stats_without_credentials",
    ("/api/v1/budgets", "GET"): "stats_without_credentials",
}
STATS_POLLER = Identity(name="stats-poller", role=Role.VIEWER, source="anonymous")

Endpoint = Callable[[Request], Awaitable[Response]]


class UndeclaredRoute(Exception):
    """A route with no entry in ACCESS: refuse to start rather than serve it unprotected."""


def permission_of(route: Route) -> Permission:
    methods = sorted((route.methods or {"GET"}) - {"HEAD"})
    found = {ACCESS.get((route.path, m)) for m in methods}
    if None in found or len(found) != 1:
        raise UndeclaredRoute(f"{route.path} {methods}: declare its permission in gateway/api/access.py")
    (permission,) = found
    assert permission is not None
    return permission


def protect(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    out: list[BaseRoute] = []
    for route in routes:
        if not isinstance(route, Route):
            raise UndeclaredRoute(f"{route!r}: only plain routes are supported")
        permission = permission_of(route)
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        guarded = _guarded(route.endpoint, permission, (route.path, methods[0]))
        out.append(Route(route.path, guarded, methods=methods, name=route.name))
    return out


def _guarded(endpoint: Any, permission: Permission, route_key: tuple[str, str]) -> Endpoint:
    async def guarded(request: Request) -> Response:
        state = request_state(request)
        state["request_id"] = valid_request_id(header(request, b"x-request-id"))
        if permission is not P.PUBLIC and not _opened(request, route_key):
            state["identity"] = await _identify(request, permission)
        response: Response = await endpoint(request)
        return response

    guarded.required_permission = permission  # type: ignore[attr-defined]
    guarded.unguarded = endpoint  # type: ignore[attr-defined]  # workers render their own view with it
    guarded.__name__ = getattr(endpoint, "__name__", "endpoint")
    return guarded


def _opened(request: Request, route_key: tuple[str, str]) -> bool:
    flag = OPEN_IF_CONFIGURED.get(route_key)
    if flag is None or not getattr(gateway_of(request).runtime.config.auth, flag) or bearer(request):
        return False
    request_state(request)["identity"] = STATS_POLLER
    return True


async def _identify(request: Request, permission: Permission) -> Identity:
    gateway = gateway_of(request)
    rt = gateway.runtime
    if not rt.config.auth.enabled and permission is not P.ADMIN:
        return ANONYMOUS
    if permission is P.ADMIN and not _admin_possible(gateway):
        raise NotFound("admin API is off: set admin.token in the gateway config")
    address = peer(request)
    trusted = rt.config.limits.trusted_proxies
    ip = client_ip(address, header(request, b"x-forwarded-for"), tuple(trusted)) if trusted else address
    state = request_state(request)
    state["client_ip"] = ip
    credential = bearer(request)
    identity = gateway.auth.known(rt, credential)  # a config key or the admin token seen before: no hash
    if identity is None:
        try:
            identity = await gateway.auth.identify(rt, credential, ip, state["request_id"])
        except Unauthorized:
            if permission is P.ADMIN and credential:
                raise Forbidden("invalid admin token") from None  # as before roles: a wrong admin token is a 403
            raise
    if not identity.can(permission):
        gateway.auth.audit.record(
            "access.denied",
            actor=identity,
            target=f"{request.method} {request.url.path}",
            outcome="denied",
            request_id=state["request_id"],
        )
        raise Forbidden(
            f"role {identity.role.value!r} may not {permission.value} ({request.method} {request.url.path})"
        )
    return identity


def _admin_possible(gateway: Any) -> bool:
    rt = gateway.runtime
    auth = rt.config.auth
    return bool(
        rt.admin_token_digest is not None
        or any(k.role is Role.ADMIN for k in auth.api_keys)
        or auth.key_store is not None
        or auth.jwt is not None
    )


def identity_of(request: Request) -> Identity:
    """The caller resolved by `protect` (ANONYMOUS with auth off)."""
    identity: Identity = request_state(request).get("identity", ANONYMOUS)
    return identity
