"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import gateway_of, json_response

_CIRCUIT_VALUE = {"closed": 0, "half_open": 1, "open": 2}


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
    for name, h in gateway.model_health().items():
        gateway.metrics.availability.labels(name).set(1 if h["available"] else 0)
        gateway.metrics.circuit_state.labels(name).set(_CIRCUIT_VALUE.get(str(h["circuit_state"]), 0))
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", prometheus, methods=["GET"]),
]
