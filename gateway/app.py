"""The ASGI application: routes, error rendering and lifecycle. Handlers live in `api/`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aimm_gateway.api import (
    admin_routes,
    analytics_routes,
    anthropic_routes,
    audit_routes,
    console_routes,
    key_routes,
    native_routes,
    openai_routes,
    openapi,
    ops_routes,
    ws_routes,
)
from aimm_gateway.api.access import protect
from aimm_gateway.api.common import error_response
from aimm_gateway.asgi import GatewayApp
from aimm_gateway.errors import GatewayError
from aimm_gateway.service import Gateway

log = logging.getLogger("aimm.gateway")


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else None
    message = f"{request.method} {request.url.path}: {exc.detail}"
    err = GatewayError(message, status=exc.status_code, type="invalid_request_error", code=kind)
    return error_response(err, dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(GatewayError("internal gateway error", status=500, type="server_error"))


def create_app(gateway: Gateway) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = GatewayApp(
        routes=[
            *protect(
                [
                    *openai_routes.routes,
                    *anthropic_routes.routes,
                    *native_routes.routes,
                    *admin_routes.routes,
                    *key_routes.routes,
                    *audit_routes.routes,
                    *ops_routes.routes,
                    *analytics_routes.routes,
                    *openapi.routes,
                    *console_routes.routes,
                ]
            ),
            *ws_routes.routes,  # a WebSocket route checks its own permission (READ): ws_routes.identify
        ],
        exception_handlers={GatewayError: _gateway_error, HTTPException: _http_error, Exception: _unexpected},
        lifespan=lifespan,
        gateway=gateway,
        hardening=lambda: gateway.runtime.config.hardening,  # security headers + CORS, no middleware layer
    )
    return app
