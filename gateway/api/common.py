"""Small helpers every handler shares: body limits, JSON in/out, auth, request ids."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from aimm_gateway.config import describe_validation_error, format_loc
from aimm_gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge, RequestTimeout
from aimm_gateway.pipeline import Answered
from aimm_gateway.security.body_limits import check_chat_size, parse_json
from aimm_gateway.security.identity import ANONYMOUS, Identity
from aimm_gateway.security.request_ids import valid_request_id
from aimm_gateway.service import Gateway
from aimm_gateway.stages.base import Api, Outcome, RequestContext
from aimm_gateway.telemetry import INCOMING_KEY

JSON = "application/json"
M = TypeVar("M", bound=BaseModel)
_HEADER_SAFE = str.maketrans({"\r": " ", "\n": " "})


def gateway_of(conn: HTTPConnection) -> Gateway:
    """The gateway serving this request or WebSocket (the app's `gateway`, set by `create_app`)."""
    gateway: Gateway = conn.scope["app"].gateway
    return gateway


def header(conn: HTTPConnection, name: bytes) -> str | None:
    """A request header's first value by its lower-case name (ASGI servers lower-case names).

    One scan of the ASGI header list: Starlette's `headers.get` builds a Headers view and raises
    and catches a KeyError for every absent header, which on the hot path most of them are."""
    for key, value in conn.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def request_state(conn: HTTPConnection) -> dict[str, Any]:
    """The request's state: the dict `conn.state` wraps (the same one, so both see the same values),
    without Starlette's `State` object, whose every read and write is a Python-level
    `__getattr__`/`__setattr__` (~1 % of a plain request's samples for the few the access path makes)."""
    state: dict[str, Any] = conn.scope.setdefault("state", {})
    return state


def peer(conn: HTTPConnection) -> str:
    """The client's address as the server saw it: what `conn.client.host` reads, without building
    Starlette's `Address` for it."""
    address = conn.scope.get("client")
    return address[0] if address else ""


def request_id(request: Request) -> str:
    given: str | None = request_state(request).get("request_id")
    return given or valid_request_id(header(request, b"x-request-id"))


async def read_json(request: Request, limit: int, gateway: Gateway | None = None) -> Any:
    """The body as JSON, refusing bodies over `limit` bytes before reading them whole."""
    declared = header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    hardening = (gateway or gateway_of(request)).runtime.config.hardening
    body = await _read_body(request, limit, hardening.body_timeout_s)
    if not body:
        raise InvalidRequest("request body is empty; expected JSON")
    try:
        data = await parse_json(body, hardening)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON body: {exc.msg} at position {exc.pos}") from None
    check_chat_size(data, hardening)
    return data


def _read_body(request: Request, limit: int, timeout_s: float) -> Awaitable[bytes | bytearray]:
    """The whole body within `timeout_s` (a body trickled byte by byte must not hold a request
    forever: 408, and `connection: close` so the server stops reading the rest)."""
    if _arrived(request):  # nothing left to wait for: no timer (a timer per request is ~2 % of its CPU)
        return _collect(request, limit)  # and no coroutine around it
    return _collect_within(request, limit, timeout_s)


async def _collect_within(request: Request, limit: int, timeout_s: float) -> bytes | bytearray:
    try:
        async with asyncio.timeout(timeout_s):
            return await _collect(request, limit)
    except TimeoutError:
        raise RequestTimeout(
            f"request body not received within {timeout_s:g} s", headers={"connection": "close"}
        ) from None


def _arrived(request: Request) -> bool:
    """Whether the server already holds the whole body, so reading it cannot wait. uvicorn's
    `receive` is a method of the request's cycle, whose `more_body` turns False once the body is
    complete; any other server (or a wrapped `receive`) reads as "not known", under the timer."""
    cycle = getattr(request.receive, "__self__", None)
    return getattr(cycle, "more_body", True) is False


async def _collect(request: Request, limit: int) -> bytes | bytearray:
    """The body's pieces from `receive`, as Starlette's `request.stream()` reads them, without its
    generator and copy for the usual body that comes in one piece."""
    body: bytes | bytearray = b""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        piece = message.get("body", b"")
        if not body:
            body = piece
        elif piece:
            body = body if isinstance(body, bytearray) else bytearray(body)
            body += piece
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        if not message.get("more_body", False):
            return body


async def read_body_as(request: Request, model: type[M]) -> M:
    """The JSON body validated as `model`; 400 naming the field when it doesn't fit."""
    return validate_body(model, await read_json(request, gateway_of(request).runtime.config.server.max_body_bytes))


def validate_body(model: type[M], data: Any, at: tuple[int | str, ...] = ()) -> M:
    """`data` as `model`, else a 400 whose message names every bad field and whose `param` is the
    first one (OpenAI's shape); `at` places an item of a batch (`(2,)` reads `[2].prompt`)."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"{format_loc(at) or 'body'}: expected a JSON object", param=format_loc(at) or None)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = at + tuple(exc.errors(include_url=False)[0]["loc"])
        raise InvalidRequest(describe_validation_error(exc, prefix=at), param=format_loc(first) or None) from None


class JsonBytes(Response):
    """A JSON answer with its header list built in one go (Starlette's `init_headers` scans the
    list for content-length and content-type and re-checks the media type per response); the
    same headers, in the same order: the caller's, then content-length and content-type."""

    media_type = JSON

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status_code, self.body, self.background = status, body, None
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()] if headers else []
        raw.append((b"content-length", str(len(body)).encode()))
        raw.append(_CONTENT_TYPE)
        self.raw_headers = raw
        self.after = after  # run once the answer is handed to the transport, sent or not

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.after is None:
            await super().__call__(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:  # the request's bookkeeping is owed even if the client went away
            await self.after()


_CONTENT_TYPE = (b"content-type", JSON.encode())


def json_response(
    data: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    after: Callable[[], Awaitable[None]] | None = None,
) -> Response:
    """`headers` never carry content-type or content-length (callers pass served and stage headers),
    and a JSON answer has a body (never a 1xx, 204 or 304). `after`: see `JsonBytes`."""
    return JsonBytes(orjson.dumps(data), status, headers, after)


async def answer_json(answered: Answered, make: Callable[[Outcome], tuple[Any, dict[str, str]]]) -> Response:
    """A pipeline answer as JSON (`make`: body and headers from the outcome), sent before the
    rest of the request's `after` hooks run; if building it fails, they run now."""
    try:
        data, headers = make(answered.outcome)
        return json_response(data, headers=headers, after=answered.after)
    except BaseException:
        if answered.after is not None:
            await answered.after()
        raise


def error_response(exc: GatewayError, extra_headers: dict[str, str] | None = None) -> Response:
    headers = {**exc.headers, **(extra_headers or {})}
    return Response(exc.body_bytes(), status_code=exc.status, media_type=JSON, headers=headers)


def bearer(request: HTTPConnection) -> str | None:
    given = header(request, b"authorization")
    if given and given[:7].lower() == "bearer ":
        return given[7:].strip()
    return header(request, b"x-api-key")


def caller(request: Request) -> Identity:
    """The identity `api/access.py` resolved for this request (ANONYMOUS with auth off)."""
    identity: Identity = request_state(request).get("identity", ANONYMOUS)
    return identity


def authenticate(request: Request, gateway: Gateway) -> str | None:
    """The caller's name (auth itself ran in the route's access wrapper); None with auth off."""
    identity = caller(request)
    return None if identity is ANONYMOUS else identity.name


def request_context(
    request: Request, gateway: Gateway, api: Api, rid: str | None = None, body: dict[str, Any] | None = None
) -> RequestContext:
    """Authenticate the caller and start the request's context (the body may follow later)."""
    started = time.perf_counter()
    identity: Identity | None = caller(request)
    identity = None if identity is ANONYMOUS else identity  # auth off: no caller, as before
    rid = rid if rid is not None else request_id(request)
    ip = request_state(request).get("client_ip") or peer(request)
    ctx = RequestContext(
        rid, gateway.runtime, api=api, identity=identity, client_ip=ip,
        body=body if body is not None else {}, headers=request.headers, started=started,
    )  # fmt: skip
    traceparent = header(request, b"traceparent")
    if traceparent is not None:  # continued by the request's span when tracing is on
        ctx.scratch[INCOMING_KEY] = {"traceparent": traceparent, "tracestate": header(request, b"tracestate") or ""}
    return ctx


def _header_safe(text: str) -> str:
    """`text` without line breaks, in ASCII (others as `?`); most reasons are that already."""
    if text.isascii() and "\n" not in text and "\r" not in text:
        return text
    return text.translate(_HEADER_SAFE).encode("ascii", "replace").decode()


def served_headers(ctx: RequestContext, outcome: Outcome) -> dict[str, str]:
    """Which model answered and how (the `x-aimm-*` headers), plus what stages added."""
    return {
        "x-aimm-model": outcome.model or "",
        "x-aimm-provider": outcome.provider or "",
        "x-aimm-attempts": str(len(outcome.attempts)),
        "x-aimm-route-reason": _header_safe(outcome.route_reason)[:200],
        **ctx.response_headers,
        "x-request-id": ctx.request_id,
    }
