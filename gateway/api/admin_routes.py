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
from aimm_gateway.routing import TargetSnapshot
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
    return json_response({"models": _statuses(gateway, list(gateway.runtime.models))})


def _status_of(gateway: Gateway, name: str) -> dict[str, Any]:
    return _statuses(gateway, [name])[0]


def _statuses(gateway: Gateway, names: list[str]) -> list[dict[str, Any]]:
    # Health, live stats and router state are each read once for all models.
    health, live, snapshots = gateway.model_health(), gateway.stats.per_model(), gateway.router.snapshot()
    return [_status(gateway, name, health[name], live.get(name, {}), snapshots.get(name)) for name in names]


def _status(
    gateway: Gateway, name: str, health: dict[str, Any], live: dict[str, Any], snapshot: TargetSnapshot | None
) -> dict[str, Any]:
    model = gateway.runtime.models[name]
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
