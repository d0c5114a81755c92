"""Response hardening as one ASGI middleware: security headers and CORS, from the live config.

CORS is off unless `hardening.cors.allow_origins` lists exact origins; then Starlette's own
CORSMiddleware answers (rebuilt when the config changes, so a reload takes effect).
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aimm_gateway.config import CorsSettings

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")


class HardeningMiddleware:
    def __init__(self, app: ASGIApp, gateway: Any) -> None:
        self._app = app
        self._gateway = gateway
        self._cors: tuple[CorsSettings, CORSMiddleware] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        hardening = self._gateway.runtime.config.hardening
        inner: ASGIApp = self._app
        if hardening.cors.allow_origins:
            inner = self._cors_app(hardening.cors)
        if not hardening.security_headers:
            await inner(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [h for h in SECURITY_HEADERS if h[0] not in present]
                if tls:
                    extra.append(HSTS)
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + extra}
            await send(message)

        await inner(scope, receive, send_with_headers)

    def _cors_app(self, cors: CorsSettings) -> CORSMiddleware:
        if self._cors is None or self._cors[0] != cors:
            app = CORSMiddleware(
                self._app,
                allow_origins=list(cors.allow_origins),
                allow_methods=list(cors.allow_methods),
                allow_headers=list(cors.allow_headers),
                expose_headers=["x-request-id", "retry-after", "x-aimm-model", "x-aimm-guard-score"],
                max_age=cors.max_age_s,
            )
            self._cors = (cors, app)
        return self._cors[1]
