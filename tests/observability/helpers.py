"""Small builders shared by the observability tests."""

from __future__ import annotations

from aimm_gateway.config import GatewayConfig
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.runtime import Runtime, build_runtime
from aimm_gateway.stages.base import RequestContext


def runtime(models: tuple[str, ...] = ("gpt", "claude"), routes: tuple[str, ...] = ("smart",)) -> Runtime:
    config = GatewayConfig.model_validate(
        {
            "models": [{"name": m, "provider": "mock"} for m in models],
            "routes": [{"name": r, "targets": [{"model": models[0]}]} for r in routes],
        }
    )
    return build_runtime(config, UpstreamPools("httpx", 10))


def context(rt: Runtime, requested: str, request_id: str = "req-1", **extra: object) -> RequestContext:
    return RequestContext(request_id=request_id, runtime=rt, requested=requested, **extra)  # type: ignore[arg-type]
