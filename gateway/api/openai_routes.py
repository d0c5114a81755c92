"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/embeddings, /v1/models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import (
    answer_json,
    authenticate,
    gateway_of,
    json_response,
    read_json,
    request_context,
    served_headers,
)
from aimm_gateway.api.passthrough_sse import DONE, OpenAIFrames
from aimm_gateway.api.sse_response import SSEResponse
from aimm_gateway.canonical import ChatChunk, ChatRequest, validate_chat, validate_embeddings
from aimm_gateway.errors import GatewayError
from aimm_gateway.pipeline import PassThrough, StreamResult
from aimm_gateway.providers.sse import encode_sse

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def chat_completions(request: Request) -> Response:
    gateway = gateway_of(request)
    ctx = request_context(request, gateway, "openai")
    ctx.body = await read_json(request, ctx.runtime.config.server.max_body_bytes, gateway)
    req = ctx.request = validate_chat(ctx.body)
    if req.stream:
        ctx.stream = True
        result = await gateway.pipeline.stream_passthrough(ctx)
        headers = {**SSE_HEADERS, **served_headers(ctx, result.outcome)}
        if isinstance(result, PassThrough):
            return SSEResponse(OpenAIFrames(result.relay, req.wants_usage_in_stream()), headers)
        return SSEResponse(openai_sse(result, req), headers, source=result)
    answered = await gateway.pipeline.answer(ctx)  # the answer goes out first, then the `after` hooks
    return await answer_json(answered, lambda outcome: (outcome.response, served_headers(ctx, outcome)))


async def openai_sse(outcome: StreamResult, req: ChatRequest) -> AsyncIterator[bytes]:
    """OpenAI SSE framing; a failure after the first byte ends with an error event, never silently."""
    want_usage = req.wants_usage_in_stream()
    try:
        async for chunk in outcome.chunks:
            shaped = _shape_usage(chunk, want_usage)
            if shaped is not None:
                yield encode_sse(orjson.dumps(shaped))
    except GatewayError as exc:
        yield encode_sse(exc.body_bytes())
        return
    yield DONE


def _shape_usage(chunk: ChatChunk, want_usage: bool) -> ChatChunk | None:
    # Upstreams are always asked for usage (to settle cost); clients see it only if they asked.
    if want_usage:
        if "usage" not in chunk:
            chunk["usage"] = None
        return chunk
    if "usage" in chunk:
        if not chunk.get("choices"):
            return None
        chunk = {k: v for k, v in chunk.items() if k != "usage"}
    return chunk


async def embeddings(request: Request) -> Response:
    gateway = gateway_of(request)
    ctx = request_context(request, gateway, "embeddings")
    ctx.body = await read_json(request, ctx.runtime.config.server.max_body_bytes)
    req = validate_embeddings(ctx.body)
    response, outcome = await gateway.pipeline.embed(ctx, req)
    return json_response(response, headers=served_headers(ctx, outcome))


async def list_models(request: Request) -> Response:
    gateway = gateway_of(request)
    authenticate(request, gateway)
    rt = gateway.runtime
    created = 1_700_000_000
    data = [
        {"id": m.name, "object": "model", "created": created, "owned_by": m.provider}
        for m in rt.models.values()
        if m.enabled
    ]
    data += [
        {"id": r.name, "object": "model", "created": created, "owned_by": "aimm-route"} for r in rt.routes.values()
    ]
    return json_response({"object": "list", "data": data})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
