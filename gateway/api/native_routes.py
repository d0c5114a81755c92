"""The product's native API under /api/v1: simple prompt in, text + usage + cost out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from aimm_gateway.api.common import authenticate, gateway_of, json_response, read_json, request_id
from aimm_gateway.api.openai_routes import SSE_HEADERS
from aimm_gateway.canonical import Usage, validate_chat
from aimm_gateway.compare import compare
from aimm_gateway.config import format_loc
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from aimm_gateway.pipeline import RequestContext, Served
from aimm_gateway.providers.sse import encode_sse
from aimm_gateway.service import Gateway

BATCH_CONCURRENCY = 8
MAX_BATCH = 256


class QueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., min_length=1)
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    fallback_model: str | None = None


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., description="The model that answered (the x-aimm-model header).")
    score: float = Field(..., ge=0, le=1, description="1 = great answer, 0 = useless.")
    request_id: str | None = None


class MultipleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., min_length=1)
    models: list[str] = Field(..., min_length=1, max_length=16)
    compare_results: bool = True
    system: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)


def _parse(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise InvalidRequest(f"{prefix or 'body'}: expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = prefix + format_loc(err["loc"]) if err["loc"] else prefix.rstrip(".")
        raise InvalidRequest(f"{loc}: {err['msg']}", param=loc or None) from None


def _chat_body(
    prompt: str, model: str | None, system: str | None, max_tokens: int | None, temperature: float | None
) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    body: dict[str, Any] = {"messages": messages}
    if model is not None:
        body["model"] = model
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    return body


def _usage(served: Served) -> dict[str, Any]:
    return {
        "prompt_tokens": served.usage.prompt_tokens,
        "completion_tokens": served.usage.completion_tokens,
        "total_tokens": served.usage.total_tokens,
        "total_cost": float(served.cost),
    }


async def _answer(gateway: Gateway, q: QueryBody, rid: str, key_name: str | None) -> dict[str, Any]:
    rt = gateway.runtime
    body = _chat_body(q.prompt, q.model, q.system, q.max_tokens, q.temperature)
    req = validate_chat(body)
    ctx = RequestContext(rid, key_name, fallback_model=q.fallback_model)
    started = time.perf_counter()
    response, served = await gateway.pipeline.complete(rt, req, body, ctx)
    message = response["choices"][0]["message"]
    return {
        "text": message.get("content") or "",
        "model": served.model,
        "provider": served.provider,
        "usage": _usage(served),
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        "request_id": rid,
        "finish_reason": response["choices"][0].get("finish_reason"),
    }


async def query(request: Request) -> Response:
    gateway = gateway_of(request)
    key_name = authenticate(request, gateway)
    q = _parse(QueryBody, await read_json(request, gateway.runtime.config.server.max_body_bytes))
    rid = request_id(request)
    result = await _answer(gateway, q, rid, key_name)
    return json_response(
        result,
        headers={"x-request-id": rid, "x-aimm-model": result["model"], "x-aimm-provider": result["provider"]},
    )


async def query_multiple(request: Request) -> Response:
    gateway = gateway_of(request)
    key_name = authenticate(request, gateway)
    m = _parse(MultipleBody, await read_json(request, gateway.runtime.config.server.max_body_bytes))
    rid = request_id(request)

    async def one(model: str) -> dict[str, Any]:
        q = QueryBody(prompt=m.prompt, model=model, system=m.system, max_tokens=m.max_tokens, temperature=m.temperature)
        try:
            return await _answer(gateway, q, f"{rid}-{model}", key_name)
        except GatewayError as exc:
            return {"model": model, **exc.body(), "status": exc.status}

    results = await asyncio.gather(*(one(name) for name in m.models))
    doc: dict[str, Any] = {"request_id": rid, "results": results}
    if m.compare_results:
        doc["comparison"] = compare(results)
    return json_response(doc, headers={"x-request-id": rid})


async def query_stream(request: Request) -> Response:
    gateway = gateway_of(request)
    key_name = authenticate(request, gateway)
    rt = gateway.runtime
    q = _parse(QueryBody, await read_json(request, rt.config.server.max_body_bytes))
    rid = request_id(request)
    body = _chat_body(q.prompt, q.model, q.system, q.max_tokens, q.temperature)
    body["stream"] = True
    req = validate_chat(body)
    started = time.perf_counter()
    outcome = await gateway.pipeline.stream(
        rt, req, body, RequestContext(rid, key_name, fallback_model=q.fallback_model)
    )
    pricing = rt.models[outcome.served.model].pricing

    async def events() -> AsyncIterator[bytes]:
        usage = Usage()
        finish: str | None = None
        try:
            async for chunk in outcome.chunks:
                if chunk.get("usage"):
                    usage = Usage.from_openai(chunk["usage"])
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield encode_sse(orjson.dumps({"type": "content", "text": text}))
                    finish = choice.get("finish_reason") or finish
        except GatewayError as exc:
            yield encode_sse(orjson.dumps({"type": "error", **exc.body()}))
            return
        cost: Decimal = request_cost(usage, pricing)
        final = {
            "type": "usage",
            "model": outcome.served.model,
            "provider": outcome.served.provider,
            "finish_reason": finish,
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "total_cost": float(cost),
            },
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": rid,
        }
        yield encode_sse(orjson.dumps(final))

    headers = {**SSE_HEADERS, **outcome.served.headers(), "x-request-id": rid}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def batch(request: Request) -> Response:
    gateway = gateway_of(request)
    key_name = authenticate(request, gateway)
    data = await read_json(request, gateway.runtime.config.server.max_body_bytes)
    items = data.get("requests") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise InvalidRequest("body: expected a non-empty JSON array of {prompt, model?} objects")
    if len(items) > MAX_BATCH:
        raise InvalidRequest(f"body: at most {MAX_BATCH} items per batch, got {len(items)}")
    rid = request_id(request)
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(index: int, item: Any) -> dict[str, Any]:
        async with limit:
            try:
                q = _parse(QueryBody, item, prefix=f"[{index}].")
                return {"index": index, **await _answer(gateway, q, f"{rid}-{index}", key_name)}
            except GatewayError as exc:
                return {"index": index, **exc.body(), "status": exc.status}

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    failed = sum(1 for r in results if "error" in r)
    return json_response({"request_id": rid, "results": results, "succeeded": len(results) - failed, "failed": failed})


async def feedback(request: Request) -> Response:
    """Client feedback on an answer; the adaptive algorithm learns from it."""
    gateway = gateway_of(request)
    authenticate(request, gateway)
    fb = _parse(FeedbackBody, await read_json(request, gateway.runtime.config.server.max_body_bytes))
    if fb.model not in gateway.runtime.models:
        raise ModelNotFound(f"The model {fb.model!r} does not exist", param="model")
    gateway.router.feedback(fb.model, fb.score)
    return json_response({"accepted": True, "model": fb.model, "score": fb.score}, status=202)


async def models(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    health = gateway.model_health()
    out = []
    for name, m in gateway.runtime.models.items():
        h = health[name]
        out.append(
            {
                "name": name,
                "provider": m.provider,
                "model": m.upstream_model,
                "enabled": m.enabled,
                "health": h["health"],
                "circuit_state": h["circuit_state"],
                "reason": h["reason"],
                "price": {
                    "input_per_1k": str(m.pricing.input_per_1k),
                    "output_per_1k": str(m.pricing.output_per_1k),
                },
                "max_tokens": m.max_output_tokens,
                "context_window": m.context_window,
                "capabilities": sorted(c.value for c in m.capabilities),
            }
        )
    routes = [
        {
            "name": r.name,
            "algorithm": r.algorithm,
            "targets": [t.model for t in r.targets],
            "fallbacks": r.fallbacks,
        }
        for r in gateway.runtime.routes.values()
    ]
    return json_response({"models": out, "routes": routes})


async def live_metrics(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    summary = gateway.stats.summary()
    for name, health in gateway.model_health().items():
        summary["models"].setdefault(name, {})["circuit_state"] = health["circuit_state"]
    return json_response(summary)


async def stats(request: Request) -> Response:
    """Aggregates for the operator (no secrets, no per-request data), like /metrics."""
    gateway = gateway_of(request)
    health = gateway.model_health()
    live = gateway.stats.per_model()
    models_doc: dict[str, Any] = {}
    for name, h in health.items():
        s = live.get(name, {})
        models_doc[name] = {
            "requests_total": s.get("requests_total", 0),
            "errors_total": s.get("errors_total", 0),
            "requests_per_minute": s.get("requests_per_minute", 0.0),
            "error_rate": s.get("error_rate", 0.0),
            "p95_latency_ms": s.get("p95_latency_ms"),
            "cost_usd_total": s.get("cost_usd_total", "0"),
            "circuit_state": h["circuit_state"],
            "last_error": s.get("last_error"),
            "available": h["available"],
        }
    budgets = {name: {"spent_usd": str(v)} for name, v in gateway.stats.budget_spend().items()}
    return json_response({"config_hash": gateway.runtime.config_hash, "models": models_doc, "budgets": budgets})


routes = [
    Route("/api/v1/query", query, methods=["POST"]),
    Route("/api/v1/query/multiple", query_multiple, methods=["POST"]),
    Route("/api/v1/query/stream", query_stream, methods=["POST"]),
    Route("/api/v1/batch", batch, methods=["POST"]),
    Route("/api/v1/feedback", feedback, methods=["POST"]),
    Route("/api/v1/models", models, methods=["GET"]),
    Route("/api/v1/metrics", live_metrics, methods=["GET"]),
    Route("/api/v1/stats", stats, methods=["GET"]),
]
