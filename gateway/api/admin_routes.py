"""Model management under /admin: add a model, enable/disable one or set its weight, see every model's status.

Admin needs the admin role (the `admin.token` bearer, or an admin key); see api/access.py.
Models added here may only use allow-listed secret references (security/secret_refs.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import caller, gateway_of, json_response, read_body_as, request_id
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import Forbidden, ModelNotFound
from aimm_gateway.routing import TargetSnapshot
from aimm_gateway.security.secret_refs import refused_refs
from aimm_gateway.service import Gateway

MAX_WEIGHT = 1_000_000.0  # weights are relative; a bound keeps sums finite and typos visible


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(None, description="Switch the model on or off.")
    weight: float | None = Field(
        None, ge=0, le=MAX_WEIGHT, allow_inf_nan=False, description="Routing weight (0: never a weighted first pick)."
    )

    @model_validator(mode="after")
    def _something(self) -> ModelPatch:
        if self.enabled is None and self.weight is None:
            raise ValueError("give `enabled`, `weight` or both")
        return self


def _require_admin(request: Request) -> Gateway:
    # The caller's admin role was checked by the route's access wrapper (api/access.py).
    return gateway_of(request)


def _audit(request: Request, action: str, target: str, **detail: Any) -> None:
    gateway_of(request).security.audit.record(
        action, actor=caller(request), target=target, request_id=request_id(request), **detail
    )


class ModelKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_key: str = Field(..., min_length=1, max_length=4096)


async def add_model(request: Request) -> Response:
    gateway = _require_admin(request)
    model = await read_body_as(request, ModelConfig)
    refused = refused_refs(model, gateway.runtime.config.admin.secret_refs)
    if refused:
        _audit(request, "model.add", model.name, outcome="denied", refused=refused)
        raise Forbidden(
            "secret references not allowed over the admin API: " + "; ".join(refused) + ". Use PUT "
            f"/admin/models/{model.name}/api-key (encrypted store) or admin.secret_refs in the config file"
        )
    gateway.add_model(model)
    _audit(request, "model.add", model.name, provider=model.provider, base_url=model.endpoint)
    return json_response(_status_of(gateway, model.name), status=201)


def _existing(gateway: Gateway, request: Request) -> str:
    name: str = request.path_params["name"]
    if name not in gateway.runtime.models:
        raise ModelNotFound(f"The model {name!r} does not exist", param="name")
    return name


async def put_model_key(request: Request) -> Response:
    gateway = _require_admin(request)
    name = _existing(gateway, request)
    body = await read_body_as(request, ModelKey)
    gateway.set_model_key(name, body.api_key)
    _audit(request, "model.api_key.set", name)
    return json_response({"name": name, "api_key": "stored (encrypted)"})


async def patch_model(request: Request) -> Response:
    gateway = _require_admin(request)
    name = _existing(gateway, request)
    patch = await read_body_as(request, ModelPatch)
    gateway.change_model(name, enabled=patch.enabled, weight=patch.weight)
    if patch.enabled is not None:
        _audit(request, "model.enable" if patch.enabled else "model.disable", name)
    if patch.weight is not None:
        _audit(request, "model.weight", name, weight=patch.weight)
    return json_response(_status_of(gateway, name))


async def models_status(request: Request) -> Response:
    gateway = _require_admin(request)
    return json_response({"models": _statuses(gateway, list(gateway.runtime.models))})


def _status_of(gateway: Gateway, name: str) -> dict[str, Any]:
    return _statuses(gateway, [name])[0]


def _statuses(gateway: Gateway, names: list[str]) -> list[dict[str, Any]]:
    # Health, live stats and router state are each read once for all models, settled.
    gateway.backlog.run()
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
        "weight": model.weight,
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
    Route("/admin/models/{name}/api-key", put_model_key, methods=["PUT"]),
]
