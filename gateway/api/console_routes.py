"""The web console at /console: static assets from the package, and who the caller is.

The assets are public (they hold no data); everything they show is loaded from the API with
the key the user logs in with. `console.enabled: false` (the default) turns all of it off (404).
"""

from __future__ import annotations

from importlib import resources
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.audit_routes import audit_source
from aimm_gateway.api.common import bearer, gateway_of, json_response
from aimm_gateway.api.ws_routes import caller_of
from aimm_gateway.errors import GatewayError, NotFound
from aimm_gateway.security.identity import Permission
from aimm_gateway.service import Gateway

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Same-origin only: no CDN, no inline script; the live feed is a WebSocket to this host.
HEADERS = {
    "content-security-policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
# Optional APIs other parts of the gateway may add; the console shows an empty state without them.
FEATURES = {"budgets": "/api/v1/budgets", "keys": "/admin/keys", "audit": "/admin/audit"}


def load_assets() -> MappingProxyType[str, tuple[bytes, str]]:
    """Every file of the package's console/static, read once (they are small)."""
    folder = resources.files("aimm_gateway.console").joinpath("static")
    found = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return MappingProxyType(found)


ASSETS = load_assets()


def _require_console(request: Request) -> None:
    if not gateway_of(request).runtime.config.console.enabled:
        raise NotFound("the web console is off: set console.enabled: true in the gateway config")


async def index(request: Request) -> Response:
    _require_console(request)
    body, kind = ASSETS["index.html"]
    return Response(body, media_type=kind, headers=HEADERS)


async def asset(request: Request) -> Response:
    _require_console(request)
    found = ASSETS.get(request.path_params["name"])
    if found is None:
        raise NotFound(f"no console asset {request.path_params['name']!r}")
    return Response(found[0], media_type=found[1], headers=HEADERS)


async def session(request: Request) -> Response:
    """Who the key belongs to and what the console may show them (its role-aware navigation)."""
    _require_console(request)
    gateway = gateway_of(request)
    identity = await caller_of(request, gateway, bearer(request))
    paths = {getattr(r, "path", "") for r in request.app.routes}
    return json_response(
        {
            "name": identity.name,
            "role": identity.role.value,
            "permissions": sorted(p.value for p in Permission if identity.can(p)),
            "features": {name: path in paths and _available(name, gateway) for name, path in FEATURES.items()},
            "auth": gateway.runtime.config.auth.enabled,
        },
        headers={"cache-control": "no-store"},
    )


def _available(feature: str, gateway: Gateway) -> bool:
    """Whether a routed feature has something to show (the audit trail needs a readable sink)."""
    if feature != "audit":
        return True
    try:
        return audit_source(gateway) is not None
    except GatewayError:  # configured but its store is down: the page shows the error
        return True


routes = [
    Route("/console", index, methods=["GET"]),
    Route("/console/session", session, methods=["GET"]),
    Route("/console/{name}", asset, methods=["GET"]),
]
