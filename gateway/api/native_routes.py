"""The product's native API under /api/v1: simple prompt in, text + usage + cost out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import (
    authenticate,
    gateway_of,
    json_response,
    read_json,
    request_context,
    served_headers,
    validate_body,
)
from aimm_gateway.api.openai_routes import SSE_HEADERS
from aimm_gateway.api.sse_response import SSEResponse
from aimm_gateway.canonical import validate_chat
from aimm_gateway.compare import compare
from aimm_gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from aimm_gateway.overrides import effective_weight
from aimm_gateway.pipeline import StreamResult
from aimm_gateway.providers.sse import encode_sse
from aimm_gateway.service import Gateway
from aimm_gateway.stages.base import Outcome, RequestContext
from aimm_gateway.stats import model_views

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


def _usage(outcome: Outcome) -> dict[str, Any]:
    return {
        "prompt_tokens": outcome.usage.prompt_tokens,
        "completion_tokens": outcome.usage.completion_tokens,
        "total_tokens": outcome.usage.total_tokens,
        "total_cost": float(outcome.cost),
    }


def _context(parent: RequestContext, q: QueryBody, rid: str, stream: bool = False) -> RequestContext:
    """A chat context for one prompt of a native call (a batch or multiple call makes several)."""
    body = _chat_body(q.prompt, q.model, q.system, q.max_tokens, q.temperature)
    if stream:
        body["stream"] = True
    return RequestContext(
        rid, parent.runtime, api="native", identity=parent.identity, client_ip=parent.client_ip,
        body=body, stream=stream, request=validate_chat(body), fallback_model=q.fallback_model,
        started=time.perf_counter(),
    )  # fmt: skip


async def _answer(gateway: Gateway, parent: RequestContext, q: QueryBody, rid: str) -> dict[str, Any]:
    ctx = _context(parent, q, rid)
    outcome = await gateway.pipeline.complete(ctx)
    assert outcome.response is not None
    choice = outcome.response["choices"][0]
    return {
        "text": choice["message"].get("content") or "",
        "model": outcome.model,
        "provider": outcome.provider,
        "usage": _usage(outcome),
        "latency_ms": round((time.perf_counter() - ctx.started) * 1000, 3),
        "request_id": rid,
        "finish_reason": choice.get("finish_reason"),
    }


async def query(request: Request) -> Response:
    gateway = gateway_of(request)
    parent = request_context(request, gateway, "native")
    q = validate_body(QueryBody, await read_json(request, parent.runtime.config.server.max_body_bytes))
    result = await _answer(gateway, parent, q, parent.request_id)
    return json_response(
        result,
        headers={
            "x-request-id": parent.request_id,
            "x-aimm-model": result["model"],
            "x-aimm-provider": result["provider"],
        },
    )


async def query_multiple(request: Request) -> Response:
    gateway = gateway_of(request)
    parent = request_context(request, gateway, "native")
    m = validate_body(MultipleBody, await read_json(request, parent.runtime.config.server.max_body_bytes))
    rid = parent.request_id

    async def one(model: str) -> dict[str, Any]:
        q = QueryBody(prompt=m.prompt, model=model, system=m.system, max_tokens=m.max_tokens, temperature=m.temperature)
        try:
            return await _answer(gateway, parent, q, f"{rid}-{model}")
        except GatewayError as exc:
            return {"model": model, **exc.body(), "status": exc.status}

    results = await asyncio.gather(*(one(name) for name in m.models))
    doc: dict[str, Any] = {"request_id": rid, "results": results}
    if m.compare_results:
        doc["comparison"] = compare(results)
    return json_response(doc, headers={"x-request-id": rid})


async def query_stream(request: Request) -> Response:
    gateway = gateway_of(request)
    parent = request_context(request, gateway, "native")
    q = validate_body(QueryBody, await read_json(request, parent.runtime.config.server.max_body_bytes))
    ctx = _context(parent, q, parent.request_id, stream=True)
    result = await gateway.pipeline.stream(ctx)
    headers = {**SSE_HEADERS, **served_headers(ctx, result.outcome)}
    return SSEResponse(_native_sse(ctx, result), headers, source=result)


async def _native_sse(ctx: RequestContext, result: StreamResult) -> AsyncIterator[bytes]:
    """Text deltas as `content` events, then one `usage` event (or an `error` event)."""
    finish: str | None = None
    try:
        async for chunk in result.chunks:
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield encode_sse(orjson.dumps({"type": "content", "text": text}))
                finish = choice.get("finish_reason") or finish
    except GatewayError as exc:
        yield encode_sse(orjson.dumps({"type": "error", **exc.body()}))
        return
    outcome = result.outcome  # settled: the stream has ended
    final = {
        "type": "usage",
        "model": outcome.model,
        "provider": outcome.provider,
        "finish_reason": finish,
        "usage": _usage(outcome),
        "latency_ms": round((time.perf_counter() - ctx.started) * 1000, 3),
        "request_id": ctx.request_id,
    }
    yield encode_sse(orjson.dumps(final))


async def batch(request: Request) -> Response:
    gateway = gateway_of(request)
    parent = request_context(request, gateway, "native")
    data = await read_json(request, parent.runtime.config.server.max_body_bytes)
    items = data.get("requests") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise InvalidRequest("body: expected a non-empty JSON array of {prompt, model?} objects")
    if len(items) > MAX_BATCH:
        raise InvalidRequest(f"body: at most {MAX_BATCH} items per batch, got {len(items)}")
    rid = parent.request_id
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(index: int, item: Any) -> dict[str, Any]:
        async with limit:
            try:
                q = validate_body(QueryBody, item, at=(index,))
                return {"index": index, **await _answer(gateway, parent, q, f"{rid}-{index}")}
            except GatewayError as exc:
                return {"index": index, **exc.body(), "status": exc.status}

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    failed = sum(1 for r in results if "error" in r)
    return json_response({"request_id": rid, "results": results, "succeeded": len(results) - failed, "failed": failed})


async def feedback(request: Request) -> Response:
    """Client feedback on an answer; the adaptive algorithm learns from it."""
    gateway = gateway_of(request)
    authenticate(request, gateway)
    fb = validate_body(FeedbackBody, await read_json(request, gateway.runtime.config.server.max_body_bytes))
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
                "weight": m.weight,
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
            "weights": [effective_weight(r, gateway.runtime.models, i) for i in range(len(r.targets))],
            "fallbacks": r.fallbacks,
        }
        for r in gateway.runtime.routes.values()
    ]
    return json_response({"models": out, "routes": routes})


async def live_metrics(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    summary = gateway.live_summary()
    for name, health in gateway.model_health().items():
        summary["models"].setdefault(name, {})["circuit_state"] = health["circuit_state"]
    return json_response(summary)


async def stats(request: Request) -> Response:
    """Aggregates for the operator (no secrets, no per-request data), like /metrics."""
    gateway = gateway_of(request)
    gateway.backlog.run()  # settled figures: every answer sent is counted
    fields = ("requests_total", "errors_total", "requests_per_minute", "error_rate", "p95_latency_ms", "cost_usd_total")
    models_doc = model_views(gateway.stats.per_model(), gateway.model_health(), (*fields, "last_error"))
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
