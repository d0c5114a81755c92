"""Anthropic-compatible endpoints: POST /v1/messages and POST /v1/messages/count_tokens.

Thin handlers over the same pipeline as the OpenAI endpoints: translate the Anthropic request to
the canonical shape (`aimm_gateway.inbound.anthropic_in`), validate, run, translate back. Errors
on these paths are rendered in Anthropic's shape here, because the app-level handler speaks
OpenAI's; a stream that fails after its first byte ends with an `error` event.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.api.common import (
    JSON,
    answer_json,
    authenticate,
    gateway_of,
    json_response,
    read_json,
    request_context,
    request_id,
    served_headers,
)
from aimm_gateway.api.openai_routes import SSE_HEADERS
from aimm_gateway.api.sse_response import SSEResponse
from aimm_gateway.canonical import validate_chat
from aimm_gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from aimm_gateway.inbound.anthropic_in import (
    AnthropicStreamWriter,
    error_body,
    to_anthropic_message,
    to_openai_request,
)
from aimm_gateway.pipeline import StreamResult
from aimm_gateway.providers.sse import encode_sse
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import Outcome
from aimm_gateway.tokens import estimate_prompt_tokens

log = logging.getLogger("aimm.gateway")

_Handler = Callable[[Request, str], Awaitable[Response]]


def _anthropic_errors(handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
    """Give the handler its request id; render any failure in Anthropic's error shape."""

    async def endpoint(request: Request) -> Response:
        rid = request_id(request)
        try:
            return await handler(request, rid)
        except GatewayError as exc:
            return _error_response(exc, rid)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return _error_response(GatewayError("internal gateway error", status=500), rid)

    return endpoint


def _error_response(exc: GatewayError, rid: str) -> Response:
    headers = {**exc.headers, "request-id": rid, "x-request-id": rid}
    return Response(orjson.dumps(error_body(exc, rid)), status_code=exc.status, media_type=JSON, headers=headers)


@_anthropic_errors
async def messages(request: Request, rid: str) -> Response:
    gateway = gateway_of(request)
    ctx = request_context(request, gateway, "anthropic", rid)
    ctx.body = to_openai_request(await read_json(request, ctx.runtime.config.server.max_body_bytes))
    req = ctx.request = validate_chat(ctx.body)
    if req.stream:
        ctx.stream = True
        result = await gateway.pipeline.stream(ctx)
        writer = AnthropicStreamWriter(
            result.outcome.model or "", input_tokens=ctx.prompt_tokens, stop_sequences=req.stop_list
        )
        headers = {**SSE_HEADERS, **served_headers(ctx, result.outcome), "request-id": rid}
        return SSEResponse(anthropic_sse(result, writer), headers, source=result)

    def message(outcome: Outcome) -> tuple[dict[str, Any], dict[str, str]]:
        assert outcome.response is not None
        body = to_anthropic_message(outcome.response, model=outcome.model or "", stop_sequences=req.stop_list)
        return body, {**served_headers(ctx, outcome), "request-id": rid}

    answered = await gateway.pipeline.answer(ctx)  # the answer goes out first, then the `after` hooks
    return await answer_json(answered, message)


async def anthropic_sse(outcome: StreamResult, writer: AnthropicStreamWriter) -> AsyncIterator[bytes]:
    """Anthropic's SSE framing; a failure after the first byte ends with an `error` event."""
    try:
        async for chunk in outcome.chunks:
            for name, data in writer.feed(chunk):
                yield encode_sse(orjson.dumps(data), event=name)
        events = writer.finish()
    except GatewayError as exc:
        events = [writer.error(exc)]
    except Exception:  # a bug must still end the stream with an error event, not a silent close
        log.exception("error while streaming an Anthropic answer")
        events = [writer.error(GatewayError("internal gateway error", status=500))]
    for name, data in events:
        yield encode_sse(orjson.dumps(data), event=name)


@_anthropic_errors
async def count_tokens(request: Request, rid: str) -> Response:
    """`{"input_tokens": N}`: the gateway's estimate (~4 characters per token), not a tokenizer's count."""
    gateway = gateway_of(request)
    authenticate(request, gateway)
    rt = gateway.runtime
    req = validate_chat(to_openai_request(await read_json(request, rt.config.server.max_body_bytes), for_count=True))
    _require_model(rt, req.model)
    return json_response(
        {"input_tokens": estimate_prompt_tokens(req)}, headers={"x-request-id": rid, "request-id": rid}
    )


def _require_model(rt: Runtime, name: str | None) -> None:
    name = name or rt.config.server.default_model
    if not name:
        raise InvalidRequest("model: Field required", param="model")
    if name not in rt.models and name not in rt.routes:
        raise ModelNotFound(f"The model {name!r} does not exist", param="model")


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
