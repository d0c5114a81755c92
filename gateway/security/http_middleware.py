"""Response hardening without a middleware layer: security headers and CORS, from the live config.

`GatewayApp` (asgi.py) applies it once per request, by the cheapest means the request allows:
a response built on the direct path gets the headers appended to its own header list before it
is sent (no `send` wrapper at all); anything else gets one thin `send` wrapper. CORS is off
unless `hardening.cors.allow_origins` lists exact origins; then Starlette's own CORSMiddleware
answers around the whole app (rebuilt when the config changes, so a reload takes effect).
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Send

from aimm_gateway.config import CorsSettings

Header = tuple[bytes, bytes]

SECURITY_HEADERS: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")
NO_STORE = (b"cache-control", b"no-store")


def missing_headers(headers: list[Header], tls: bool) -> list[Header]:
    """The security headers a response with `headers` lacks (HSTS on TLS; no-store unless it set caching)."""
    present = {name.lower() for name, _ in headers}
    extra = [h for h in SECURITY_HEADERS if h[0] not in present]
    if tls:
        extra.append(HSTS)
    if b"cache-control" not in present:
        extra.append(NO_STORE)
    return extra


def add_security_headers(headers: list[Header], tls: bool) -> None:
    """In place, on a response's own header list before it is sent (the direct path)."""
    headers += missing_headers(headers, tls)


def with_security_headers(send: Send, tls: bool) -> Send:
    """`send` that adds the security headers to the response start (every other path)."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            message = {**message, "headers": headers + missing_headers(headers, tls)}
        await send(message)

    return send_with_headers


class CorsApps:
    """Starlette's CORSMiddleware around `app`, rebuilt only when the CORS settings change."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._cors: tuple[CorsSettings, CORSMiddleware] | None = None

    def get(self, cors: CorsSettings) -> CORSMiddleware:
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
