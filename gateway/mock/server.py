"""HTTP mock upstream providers: a Starlette app speaking the OpenAI or Anthropic wire format.

Routes (``fmt="openai"``): ``POST /v1/chat/completions``, ``POST /v1/embeddings``,
``GET /v1/models``. (``fmt="anthropic"``): ``POST /v1/messages``,
``POST /v1/messages/count_tokens``, ``GET /v1/models``. (``fmt="azure"``, see ``azure_wire``):
``POST /openai/deployments/{deployment}/chat/completions`` and ``.../embeddings``.
(``fmt="bedrock"``, see ``bedrock_wire``; SigV4-signed): ``POST /model/{modelId}/converse``,
``.../converse-stream`` (binary event stream) and ``.../invoke`` (Titan embeddings).
(``fmt="cohere"``, see ``cohere_wire``): ``POST /v2/chat``, ``POST /v2/embed``, ``GET /v1/models``.
(``fmt="gemini"``, see ``gemini_wire``): ``POST /v1beta/models/{model}:{method}`` (generateContent,
streamGenerateContent, countTokens, batchEmbedContents), ``GET /v1beta/models``, the same under ``/v1``.
(``fmt="vertex"``): ``POST /v1/projects/{p}/locations/{l}/publishers/{google|anthropic}/models/{model}:{method}``
(also rawPredict, streamRawPredict, predict; also under ``/v1beta1``), bearer tokens from ``POST /token``,
settings at ``POST /_mock/vertex``.
All also serve the test controls ``GET|POST /_mock/faults``, ``GET /_mock/stats``, ``POST /_mock/reset`` and
``GET /health``.

Faults (see :mod:`aimm_gateway.mock.faults`) are applied in this order: latency, connection
reset, injected failure, then the real API's own checks (auth, headers, body validation).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from . import anthropic_wire, azure_wire, bedrock_wire, cohere_wire, gemini_wire, openai_wire
from .engine import MockInput, MockOutput, MockValidationError, generate, random_hex
from .faults import FAULT_HEADER, FaultInjector, FaultSettings, MockStats, RequestFaults
from .wire import sse_data, sse_named

__all__ = ["FORMATS", "MockProviderApp", "MockState", "create_mock_app", "run_mock_provider"]

FORMATS = ("openai", "anthropic", "azure", "bedrock", "cohere", "gemini", "vertex")
DEFAULT_MODELS = {
    "openai": (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3-mini",
        "text-embedding-3-small",
        "text-embedding-3-large",
    ),
    "anthropic": ("claude-sonnet-4-6", "claude-opus-4-7", "claude-haiku-4-5"),
    "azure": ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small"),  # deployment names
    "bedrock": bedrock_wire.DEFAULT_MODELS,
    "cohere": cohere_wire.DEFAULT_MODELS,
    "gemini": gemini_wire.GEMINI_MODELS,
    "vertex": gemini_wire.VERTEX_MODELS,
}
_RAW_SEND = "aimm.mock.raw_send"  # scope key: the server's own send, our handle on the connection
_RETRY_AFTER_STATUSES = (429, 503, 529)
_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"


# ---------------------------------------------------------------------------------------------
# Provider dialects: what differs between the two wire formats at the HTTP level


class _OpenAIDialect:
    name = "openai"
    done_frame: bytes | None = b"data: [DONE]\n\n"

    def request_id_headers(self, request_id: str | None = None) -> dict[str, str]:
        return {"x-request-id": request_id or "req_" + random_hex(32)}

    def check_request(self, request: Request, require_auth: bool) -> None:
        if require_auth and (error := openai_wire.auth_error(request.headers.get("authorization"))):
            raise error

    def bad_request(self, message: str) -> MockValidationError:
        return MockValidationError(400, openai_wire.error_body(message))

    def invalid_json(self, detail: str) -> MockValidationError:
        return openai_wire.invalid_json_error()

    fault_body = staticmethod(openai_wire.fault_error_body)

    def rate_limit_headers(self, retry_after_ms: int) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{retry_after_ms}ms",
        }

    def frame(self, event: dict[str, Any]) -> bytes:
        return sse_data(event)

    def error_frame(self) -> bytes:
        return self.frame(openai_wire.stream_error_chunk())


class _AnthropicDialect:
    name = "anthropic"
    done_frame: bytes | None = None  # Anthropic streams end with message_stop, no sentinel

    def request_id_headers(self, request_id: str | None = None) -> dict[str, str]:
        return {"request-id": request_id or anthropic_wire.new_request_id()}

    def check_request(self, request: Request, require_auth: bool) -> None:
        anthropic_wire.check_headers(request.headers, require_auth=require_auth)

    def bad_request(self, message: str) -> MockValidationError:
        return MockValidationError(400, anthropic_wire.error_body("invalid_request_error", message))

    invalid_json = staticmethod(anthropic_wire.invalid_json_error)
    fault_body = staticmethod(anthropic_wire.fault_error_body)

    def rate_limit_headers(self, retry_after_ms: int) -> dict[str, str]:
        return {
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "0",
        }

    def frame(self, event: dict[str, Any]) -> bytes:
        return sse_named(event)

    def error_frame(self) -> bytes:
        return self.frame(anthropic_wire.stream_error_event())


_Dialect = (
    _OpenAIDialect
    | _AnthropicDialect
    | azure_wire.AzureDialect
    | bedrock_wire.BedrockDialect
    | cohere_wire.CohereDialect
    | gemini_wire.GeminiDialect
)
_DIALECTS: dict[str, _Dialect] = {
    "openai": _OpenAIDialect(),
    "anthropic": _AnthropicDialect(),
    "azure": azure_wire.AzureDialect(),
    "bedrock": bedrock_wire.BedrockDialect(),
    "cohere": cohere_wire.CohereDialect(),
    "gemini": gemini_wire.GeminiDialect(),
    "vertex": gemini_wire.VertexDialect(),
}


# ---------------------------------------------------------------------------------------------
# App and per-app state


@dataclass(slots=True)
class MockState:
    """Everything mutable of one mock provider; lives on the app, never in module globals."""

    dialect: _Dialect
    faults: FaultInjector
    stats: MockStats
    require_auth: bool
    models: tuple[str, ...]


class MockProviderApp(Starlette):
    """Starlette app that keeps the server's raw ``send`` in the scope.

    Starlette wraps ``send`` in middleware closures; the raw one (a bound method of the server's
    request cycle under uvicorn) is how a fault reaches the connection to drop it.
    """

    mock: MockState

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def create_mock_app(
    fmt: str,
    faults: FaultSettings | None = None,
    require_auth: bool = False,
    rng: random.Random | None = None,
    *,
    models: Sequence[str] | None = None,
) -> MockProviderApp:
    """Build a mock provider app for ``fmt`` ("openai" or "anthropic").

    ``faults`` are the initial fault settings (runtime-changeable via ``POST /_mock/faults``),
    ``require_auth`` enforces the provider's API-key header, ``rng`` (e.g. ``random.Random(0)``)
    makes random faults reproducible, ``models`` is what ``GET /v1/models`` lists.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown mock provider format {fmt!r}; expected one of {FORMATS}")
    state = MockState(
        dialect=_DIALECTS[fmt],
        faults=FaultInjector(faults, rng),
        stats=MockStats(),
        require_auth=require_auth,
        models=tuple(models) if models is not None else DEFAULT_MODELS[fmt],
    )
    app = MockProviderApp(routes=[*_api_routes(fmt, state), *_control_routes(state)])
    app.mock = state
    app.state.mock = state
    return app


def _api_routes(fmt: str, state: MockState) -> list[BaseRoute]:
    if fmt == "azure":
        return _azure_routes(state)
    if fmt == "bedrock":
        return _bedrock_routes(state)
    if fmt == "cohere":
        return _cohere_routes(state)
    if fmt in ("gemini", "vertex"):
        return _google_routes(state, vertex=fmt == "vertex")
    if fmt == "openai":
        chat = _chat_handler(state, openai_wire.parse_request, openai_wire.render_completion, openai_wire.render_stream)
        return [
            _route(state, "POST", "/v1/chat/completions", chat),
            _route(state, "POST", "/v1/embeddings", _embeddings_handler(state)),
            _route(state, "GET", "/v1/models", _models_handler(state, openai_wire.render_models)),
        ]
    messages = _chat_handler(
        state, anthropic_wire.parse_request, anthropic_wire.render_message, anthropic_wire.render_stream
    )
    return [
        _route(state, "POST", "/v1/messages", messages),
        _route(state, "POST", "/v1/messages/count_tokens", _count_tokens_handler(state)),
        _route(state, "GET", "/v1/models", _models_handler(state, anthropic_wire.render_models)),
    ]


_Handler = Callable[[Request, RequestFaults, Any], Awaitable[Response]]


def _azure_routes(state: MockState) -> list[BaseRoute]:
    chat = _chat_handler(state, azure_wire.parse_request, azure_wire.render_completion, azure_wire.render_stream)
    prefix = "/openai/deployments/{deployment}"
    return [
        _route(state, "POST", f"{prefix}/chat/completions", _azure_deployment(state, chat)),
        _route(state, "POST", f"{prefix}/embeddings", _azure_deployment(state, _embeddings_handler(state))),
    ]


def _azure_deployment(state: MockState, handler: _Handler) -> _Handler:
    """The path's deployment names the model; last_request keeps the query (api-version) too."""

    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        target = f"{request.scope['path']}?{request.scope['query_string'].decode('latin-1')}"
        state.stats.record_last(target, request.scope["headers"], body)
        return await handler(request, plan, azure_wire.with_deployment(body, request.path_params["deployment"]))

    return handle


def _bedrock_routes(state: MockState) -> list[BaseRoute]:
    # `:path` because an ARN model id arrives with its '/' percent-encoded and the path is decoded.
    prefix = "/model/{model_id:path}"
    verify = bedrock_wire.verify_request
    return [
        _route(state, "POST", f"{prefix}/converse", _converse_handler(state, stream=False), verify=verify),
        _route(state, "POST", f"{prefix}/converse-stream", _converse_handler(state, stream=True), verify=verify),
        _route(state, "POST", f"{prefix}/invoke", _invoke_handler(state), verify=verify),
    ]


def _cohere_routes(state: MockState) -> list[BaseRoute]:
    chat = _chat_handler(state, cohere_wire.parse_request, cohere_wire.render_chat, cohere_wire.render_stream)
    return [
        _route(state, "POST", "/v2/chat", chat),
        _route(state, "POST", "/v2/embed", _embeddings_handler(state, cohere_wire.render_embed)),
        _route(state, "GET", "/v1/models", _models_handler(state, cohere_wire.render_models)),
    ]


def _google_routes(state: MockState, *, vertex: bool) -> list[BaseRoute]:
    """Gemini API / Vertex AI: one route per model, the method after the colon (``m:generateContent``)."""
    handler = _google_model_handler(state, vertex=vertex)
    if not vertex:
        models = _models_handler(state, gemini_wire.render_models)
        # Every API version google-genai may ask for (its default has changed over releases).
        return [
            route
            for version in gemini_wire.API_VERSIONS
            for route in (
                _route(state, "POST", f"/{version}/models/{{target}}", handler),
                _route(state, "GET", f"/{version}/models", models),
            )
        ]
    paths = [
        f"/{version}/projects/{{project}}/locations/{{location}}/publishers/{{publisher}}/models/{{target}}"
        for version in gemini_wire.VERTEX_API_VERSIONS
    ]
    auth = _vertex_auth_routes(state, gemini_wire.VertexAuth())
    return [*(_route(state, "POST", path, handler) for path in paths), *auth]


def _google_model_handler(state: MockState, *, vertex: bool) -> _Handler:
    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        model, method = gemini_wire.split_target(request.path_params["target"])
        publisher = request.path_params.get("publisher", "google")
        if publisher == "anthropic" and method in ("rawPredict", "streamRawPredict"):
            return _vertex_anthropic(request, plan, body, model, stream=method == "streamRawPredict")
        if publisher != "google":
            raise gemini_wire.not_found(f"Publisher model `{publisher}/{model}` does not support {method}.")
        if method in ("generateContent", "streamGenerateContent"):
            inp = gemini_wire.parse_request(body, model, vertex=vertex)
            out = generate(inp)
            if method == "generateContent":
                return _json(200, gemini_wire.render_response(model, inp, out, vertex=vertex))
            events = gemini_wire.render_stream(model, inp, out, plan.stream_chunks, vertex=vertex)
            if request.query_params.get("alt") == "sse":
                return _SSEResponse(_sse_body(request.scope, state.dialect, events, plan))
            # Without alt=sse Google streams one JSON array, element by element.
            framing = gemini_wire.JsonArrayFraming()
            return _SSEResponse(_sse_body(request.scope, framing, events, plan), media_type=_JSON)
        if method == "countTokens":
            return _json(200, gemini_wire.render_count_tokens(body, model, vertex=vertex))
        if method == "batchEmbedContents" and not vertex:
            return _json(200, gemini_wire.render_batch_embeddings(body, model))
        if method == "predict" and vertex:
            return _json(200, gemini_wire.render_vertex_predict(body, model))
        raise gemini_wire.not_found(f"Method not found: {method}")

    return handle


def _vertex_anthropic(request: Request, plan: RequestFaults, body: Any, model: str, *, stream: bool) -> Response:
    """Claude on Vertex: an Anthropic Messages body (model in the URL) in, Anthropic's answer out."""
    messages = gemini_wire.anthropic_body(body, model)
    out = generate(anthropic_wire.parse_request(messages))
    if not stream:
        return _json(200, anthropic_wire.render_message(messages, out))
    events = anthropic_wire.render_stream(messages, out, plan.stream_chunks)
    return _SSEResponse(_sse_body(request.scope, _DIALECTS["anthropic"], events, plan))


def _vertex_auth_routes(state: MockState, auth: gemini_wire.VertexAuth) -> list[BaseRoute]:
    """Google's OAuth token endpoint (JWT-bearer grant) and its test settings, per app."""

    async def token(request: Request) -> Response:
        state.stats.record_request(request.scope["path"])
        status, body = gemini_wire.token_response(await request.body(), auth)
        state.stats.record_status(status)
        return _json(status, body)

    async def settings(request: Request) -> Response:
        try:
            fields = orjson.loads(await request.body() or b"{}")
            if not isinstance(fields, dict):
                raise ValueError("expected a JSON object with keys and/or token_ttl_s")
            auth.update(fields)
        except ValueError as exc:  # includes orjson.JSONDecodeError
            return _json(422, {"detail": str(exc)})
        return _json(200, {"keys": sorted(auth.keys), "token_ttl_s": auth.token_ttl_s})

    return [Route("/token", token, methods=["POST"]), Route("/_mock/vertex", settings, methods=["POST"])]


_Verify = Callable[[Request, bytes], None]


def _route(state: MockState, method: str, path: str, handler: _Handler, *, verify: _Verify | None = None) -> Route:
    """Wrap an API handler with the shared admission steps and status accounting.

    ``verify`` checks a request signature that covers the raw body (SigV4), before JSON parsing.
    """

    async def endpoint(request: Request) -> Response:
        admitted = await _admit(request, state, parse_body=method == "POST", verify=verify)
        if isinstance(admitted, Response):
            response = admitted
        else:
            try:
                response = await handler(request, *admitted)
            except MockValidationError as exc:
                response = _error_response(state.dialect, exc)
        if not isinstance(response, _Dropped):
            state.stats.record_status(response.status_code)
        return response

    return Route(path, endpoint, methods=[method])


async def _admit(
    request: Request, state: MockState, *, parse_body: bool, verify: _Verify | None = None
) -> tuple[RequestFaults, Any] | Response:
    """Count the request, apply faults and the provider's own request checks."""
    dialect, stats = state.dialect, state.stats
    path: str = request.scope["path"]
    stats.record_request(path)
    try:
        plan = state.faults.plan(request.headers.get(FAULT_HEADER))
    except (ValueError, ValidationError) as exc:
        return _error_response(dialect, dialect.bad_request(f"invalid {FAULT_HEADER} header: {exc}"))
    if plan.latency_s:
        await asyncio.sleep(plan.latency_s)
    if plan.reset:
        stats.dropped += 1
        await _drop_connection(request.scope, graceful=False)
        return _Dropped()
    if plan.fail_status is not None:
        return _fault_response(dialect, plan)
    body: Any = None
    try:
        dialect.check_request(request, state.require_auth)
        if parse_body:
            raw = await request.body()
            if verify is not None:
                verify(request, raw)
            body = _load_json(dialect, raw)
    except MockValidationError as exc:
        return _error_response(dialect, exc)
    stats.record_last(path, request.scope["headers"], body)
    return plan, body


def _load_json(dialect: _Dialect, raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise dialect.invalid_json(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# API handlers

_Parse = Callable[[Any], MockInput]
_Render = Callable[[Any, MockOutput], dict[str, Any]]
_RenderStream = Callable[[Any, MockOutput, int], Iterator[dict[str, Any]]]


def _chat_handler(state: MockState, parse: _Parse, render: _Render, render_stream: _RenderStream) -> _Handler:
    dialect = state.dialect

    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        out = generate(parse(body))
        if body.get("stream"):
            events = render_stream(body, out, plan.stream_chunks)
            return _SSEResponse(_sse_body(request.scope, dialect, events, plan), headers=dialect.request_id_headers())
        return _json(200, render(body, out), dialect.request_id_headers())

    return handle


def _embeddings_handler(
    state: MockState, render: Callable[[Any], dict[str, Any]] = openai_wire.render_embeddings
) -> _Handler:
    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        return _json(200, render(body), state.dialect.request_id_headers())

    return handle


def _converse_handler(state: MockState, *, stream: bool) -> _Handler:
    """Bedrock Converse: the model id is in the path, and the path (not the body) asks for a stream."""
    dialect = state.dialect

    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        model_id: str = request.path_params["model_id"]
        out = generate(bedrock_wire.parse_converse(model_id, body))
        if stream:
            events = bedrock_wire.render_converse_stream(model_id, out, plan.stream_chunks)
            return _SSEResponse(
                _sse_body(request.scope, dialect, events, plan),
                headers=dialect.request_id_headers(),
                media_type=bedrock_wire.EVENTSTREAM_CONTENT_TYPE,
            )
        return _json(200, bedrock_wire.render_converse(model_id, out), dialect.request_id_headers())

    return handle


def _invoke_handler(state: MockState) -> _Handler:
    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        response = bedrock_wire.render_invoke(request.path_params["model_id"], body)
        return _json(200, response, state.dialect.request_id_headers())

    return handle


def _count_tokens_handler(state: MockState) -> _Handler:
    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        inp = anthropic_wire.parse_count_tokens_request(body)
        return _json(200, anthropic_wire.render_count_tokens(inp), state.dialect.request_id_headers())

    return handle


def _models_handler(state: MockState, render: Callable[[Sequence[str]], dict[str, Any]]) -> _Handler:
    async def handle(request: Request, plan: RequestFaults, body: Any) -> Response:
        return _json(200, render(state.models), state.dialect.request_id_headers())

    return handle


# ---------------------------------------------------------------------------------------------
# Test controls


def _control_routes(state: MockState) -> list[BaseRoute]:
    async def get_faults(request: Request) -> Response:
        return _json(200, state.faults.settings.model_dump())

    async def post_faults(request: Request) -> Response:
        try:
            fields = orjson.loads(await request.body() or b"{}")
            if not isinstance(fields, dict):
                raise ValueError("expected a JSON object of FaultSettings fields")
            settings = state.faults.update(fields)
        except ValidationError as exc:
            return _json(422, {"detail": orjson.loads(exc.json())})
        except ValueError as exc:  # includes orjson.JSONDecodeError
            return _json(422, {"detail": str(exc)})
        return _json(200, settings.model_dump())

    async def get_stats(request: Request) -> Response:
        return _json(200, state.stats.snapshot())

    async def reset(request: Request) -> Response:
        state.faults.reset()
        state.stats.reset()
        return _json(200, {"reset": True})

    async def health(request: Request) -> Response:
        return _json(200, {"status": "ok", "format": state.dialect.name})

    return [
        Route("/_mock/faults", get_faults, methods=["GET"]),
        Route("/_mock/faults", post_faults, methods=["POST"]),
        Route("/_mock/stats", get_stats, methods=["GET"]),
        Route("/_mock/reset", reset, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]


# ---------------------------------------------------------------------------------------------
# Responses, streaming and connection faults


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=_JSON)


def _error_headers(dialect: _Dialect, status: int, body: Any) -> dict[str, str]:
    request_id = body.get("request_id") if isinstance(body, dict) else None
    headers = dialect.request_id_headers(request_id)
    # Formats that name the error in a header (Bedrock's x-amzn-ErrorType) provide `error_headers`.
    extra = getattr(dialect, "error_headers", None)
    if extra is not None:
        headers.update(extra(status, body))
    return headers


def _error_response(dialect: _Dialect, exc: MockValidationError) -> Response:
    return _json(exc.status, exc.body, _error_headers(dialect, exc.status, exc.body))


def _fault_response(dialect: _Dialect, plan: RequestFaults) -> Response:
    status = plan.fail_status or 500
    body = dialect.fault_body(status)
    headers = _error_headers(dialect, status, body)
    if status in _RETRY_AFTER_STATUSES:
        ms = plan.retry_after_ms
        headers["retry-after"] = str(math.ceil(ms / 1000))
        headers["retry-after-ms"] = str(ms)  # both SDKs prefer this precise, non-standard header
        if status == 429:
            headers.update(dialect.rate_limit_headers(ms))
    return _json(status, body, headers)


class _Dropped(Response):
    """Placeholder returned after a connection reset: the server discards whatever it sends."""

    def __init__(self) -> None:
        super().__init__(status_code=502)


class _SSEResponse(StreamingResponse):
    """StreamingResponse without the per-stream disconnect-listener task (saves a task group per
    stream; a vanished client is noticed by the server, which then ignores our sends)."""

    media_type = _SSE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


async def _sse_body(
    scope: Scope, dialect: _Dialect, events: Iterator[dict[str, Any]], plan: RequestFaults
) -> AsyncIterator[bytes]:
    """SSE frames with the stream faults applied: first-byte delay, pacing, cut, error event."""
    if plan.first_byte_delay_s:
        await asyncio.sleep(plan.first_byte_delay_s)
    frames: Iterator[bytes] = (dialect.frame(event) for event in events)
    if dialect.done_frame is not None:
        frames = _chain(frames, dialect.done_frame)
    for sent, frame in enumerate(frames):
        if sent == plan.cut_after:
            await _drop_connection(scope, graceful=True)
            return
        if sent == plan.error_after:
            yield dialect.error_frame()
            return
        if sent and plan.chunk_interval_s:
            await asyncio.sleep(plan.chunk_interval_s)
        yield frame


def _chain(frames: Iterator[bytes], last: bytes) -> Iterator[bytes]:
    yield from frames
    yield last


async def _drop_connection(scope: Scope, *, graceful: bool) -> None:
    """Close the client connection under the response.

    ``graceful`` flushes what was already written (a stream cut mid-way, no terminal event);
    otherwise the connection is aborted without any response. Under servers that do not expose
    their transport we raise, which makes the server close the connection itself.
    """
    cycle = getattr(scope.get(_RAW_SEND), "__self__", None)
    transport: asyncio.Transport | None = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("mock fault: connection dropped")
    if graceful:
        transport.close()
    else:
        transport.abort()
    # Wait for the server to notice, so that it sends nothing more (no final chunk, no 500).
    for attempt in range(200):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0 if attempt < 3 else 0.001)


# ---------------------------------------------------------------------------------------------
# Standalone server


def run_mock_provider(
    fmt: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    faults: FaultSettings | None = None,
    require_auth: bool = False,
) -> None:
    """Serve a mock provider with uvicorn until interrupted (blocking).

    Used by ``aimm mock-provider --format openai|anthropic [--port P] [--latency-ms N]
    [--stream-chunks N] [--chunk-interval-ms N] [--fail-rate F] [--status-code C]``: the CLI
    builds ``FaultSettings(latency_ms=..., stream_chunks=..., chunk_interval_ms=...,
    fail_rate=..., status_code=...)`` and passes it as ``faults``.
    """
    import uvicorn

    uvicorn.run(
        create_mock_app(fmt, faults, require_auth),
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_level="warning",
        access_log=False,
    )
