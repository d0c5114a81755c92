"""Model management under /admin: add a model, enable/disable one, see every model's status.

Admin needs the bearer token from `admin.token`; without one configured, admin is off (404).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import bearer, gateway_of, json_response, read_json
from aimm_gateway.config import ModelConfig, describe_validation_error
from aimm_gateway.errors import Forbidden, InvalidRequest, ModelNotFound, NotFound, Unauthorized
from aimm_gateway.service import Gateway


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


def _require_admin(request: Request) -> Gateway:
    gateway = gateway_of(request)
    rt = gateway.runtime
    if rt.admin_token_digest is None:
        raise NotFound("admin API is off: set admin.token in the gateway config")
    token = bearer(request)
    if not token:
        raise Unauthorized("admin token required: send 'Authorization: Bearer <admin token>'")
    if not rt.is_admin(token):
        raise Forbidden("invalid admin token")
    return gateway


async def add_model(request: Request) -> Response:
    gateway = _require_admin(request)
    data = await read_json(request, gateway.runtime.config.server.max_body_bytes)
    try:
        model = ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None
    gateway.add_model(model)
    return json_response(_status_of(gateway, model.name), status=201)


async def patch_model(request: Request) -> Response:
    gateway = _require_admin(request)
    name = request.path_params["name"]
    if name not in gateway.runtime.models:
        raise ModelNotFound(f"The model {name!r} does not exist", param="name")
    data = await read_json(request, gateway.runtime.config.server.max_body_bytes)
    try:
        patch = ModelPatch.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None
    gateway.set_enabled(name, patch.enabled)
    return json_response(_status_of(gateway, name))


async def models_status(request: Request) -> Response:
    gateway = _require_admin(request)
    return json_response({"models": [_status_of(gateway, name) for name in gateway.runtime.models]})


def _status_of(gateway: Gateway, name: str) -> dict[str, Any]:
    model = gateway.runtime.models[name]
    health = gateway.model_health()[name]
    live = gateway.stats.per_model().get(name, {})
    snapshot = gateway.router.snapshot().get(name)
    return {
        "name": name,
        "provider": model.provider,
        "model": model.upstream_model,
        "source": "runtime" if name in gateway.overrides.added else "config",
        **health,
        "retry_in_s": gateway.retry_in_s(snapshot.retry_at) if snapshot is not None else None,
        "requests_total": live.get("requests_total", 0),
        "errors_total": live.get("errors_total", 0),
        "error_rate": live.get("error_rate", 0.0),
        "p95_latency_ms": live.get("p95_latency_ms"),
        "last_error": live.get("last_error"),
    }


routes = [
    Route("/admin/models", add_model, methods=["POST"]),
    Route("/admin/models/status", models_status, methods=["GET"]),
    Route("/admin/models/{name}", patch_model, methods=["PATCH"]),
]
