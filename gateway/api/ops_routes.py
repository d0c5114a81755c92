"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import gateway_of, json_response


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    gateway = gateway_of(request)
    usable = [m.name for m in gateway.runtime.usable_models()]
    if not usable:
        return json_response({"status": "not_ready", "reason": "no usable model", "models": 0}, status=503)
    return json_response({"status": "ready", "models": len(usable), "config_hash": gateway.runtime.config_hash})


async def prometheus(request: Request) -> Response:
    gateway = gateway_of(request)
    gateway.backlog.run()  # settled figures: every answer sent is counted
    gateway.metrics.refresh_models(gateway.model_health())
    body, content_type = gateway.metrics.exposition(request.headers.get("accept", ""))
    return Response(body, headers={"content-type": content_type})


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
