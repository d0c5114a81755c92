"""The gateway's Starlette app, with a direct path for the API's POST endpoints and hardening built in.

Starlette sends every request through ServerErrorMiddleware, ExceptionMiddleware, the router's
route scan and the endpoint wrapper, each wrapping `send` again: ~6 % of a pass-through
request's CPU (py-spy, docs/flame/). For an exact-path POST route (chat completions, messages,
the native query API) the direct path does what those layers do for it: look the endpoint up
by path, render an exception with the app's own exception handlers, send the response.
Everything else (GET routes, path parameters, 404/405, lifespan) goes through Starlette as
before, and so does everything once any user middleware is added (the direct path would skip it).

Response hardening (security headers, CORS: security/http_middleware.py) is part of this app,
not a middleware layer, so it does not turn the direct path off: a direct response gets the
headers appended to its own header list, any other response through one `send` wrapper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from aimm_gateway.config import HardeningSettings
from aimm_gateway.security.http_middleware import CorsApps, add_security_headers, with_security_headers

if TYPE_CHECKING:
    from aimm_gateway.service import Gateway

Endpoint = Callable[[Request], Awaitable[Response]]


class GatewayApp(Starlette):
    def __init__(self, *, gateway: Gateway, hardening: Callable[[], HardeningSettings], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # What handlers reach through `scope["app"]` (api/common.gateway_of): a plain attribute, not
        # `app.state`, whose every read is a Python-level `State.__getattr__` (~0.7 µs, twice a request).
        self.gateway = gateway
        self._hardening = hardening  # read per request: a reload takes effect at once
        self._cors = CorsApps(self._dispatch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        hardening = self._hardening()
        tls = scope.get("scheme") == "https"
        if hardening.cors.allow_origins:  # CORS wraps everything (it adds `Vary: Origin` even without one)
            if hardening.security_headers:
                send = with_security_headers(send, tls)
            await self._cors.get(hardening.cors)(scope, receive, send)
            return
        endpoint = self._direct_endpoint(scope)
        if endpoint is not None:
            await self._direct(endpoint, scope, receive, send, tls if hardening.security_headers else None)
        elif hardening.security_headers:
            await super().__call__(scope, receive, with_security_headers(send, tls))
        else:
            await super().__call__(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app without hardening (what CORS wraps): the direct path, else Starlette."""
        endpoint = self._direct_endpoint(scope)
        if endpoint is None:
            await super().__call__(scope, receive, send)
        else:
            await self._direct(endpoint, scope, receive, send, None)

    async def _direct(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, headers_tls: bool | None
    ) -> None:
        """Serve one direct route; `headers_tls` None: no security headers, else whether to add HSTS."""
        scope["app"] = self
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._render(request, exc)
        del request  # not kept (with its cached headers) for a streamed reply's life
        if headers_tls is not None:
            add_security_headers(response.raw_headers, headers_tls)  # once, on the response's own list
        await response(scope, receive, send)

    def _direct_endpoint(self, scope: Scope) -> Endpoint | None:
        if scope["method"] != "POST" or self.user_middleware or self.max_body_size is not None:
            return None
        return self._direct_routes().get(scope["path"])

    def _direct_routes(self) -> dict[str, Endpoint]:
        """POST-only routes without path parameters, by path; rebuilt if the route list changes."""
        routes = self.router.routes
        cached = self.__dict__.get("_direct_cache")
        if cached is not None and cached[0] == len(routes):
            return cached[1]
        direct = {
            r.path: r.endpoint
            for r in routes
            if isinstance(r, Route) and r.methods == {"POST"} and not r.param_convertors
        }
        self.__dict__["_direct_cache"] = (len(routes), direct)
        return direct

    async def _render(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                response: Response = await handler(request, exc)
                return response
        raise exc
