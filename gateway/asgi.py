"""The gateway's Starlette app, with a direct path for the API's POST endpoints.

Starlette sends every request through ServerErrorMiddleware, ExceptionMiddleware, the router's
route scan and the endpoint wrapper, each wrapping `send` again: ~6 % of a pass-through
request's CPU (py-spy, docs/flame/). For an exact-path POST route (chat completions, messages,
the native query API) the direct path does what those layers do for it: look the endpoint up
by path, render an exception with the app's own exception handlers, send the response.
Everything else (GET routes, path parameters, 404/405, lifespan) goes through Starlette as
before, and so does everything once any user middleware is added (the direct path would skip it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class GatewayApp(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self.user_middleware:
            endpoint = self._direct().get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                request = Request(scope, receive, send)
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    response = await self._render(request, exc)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _direct(self) -> dict[str, Endpoint]:
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
