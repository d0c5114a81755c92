"""What the sync and async clients share: settings, headers, retries, error and event decoding."""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import httpx

from aimm_client._ops import Call
from aimm_client._retry import RetryPolicy, parse_retry_after
from aimm_client._version import __version__
from aimm_client.errors import APIConnectionError, APIError, APITimeoutError, error_from_body
from aimm_client.types import JSON, ContentChunk, FinalChunk, StreamChunk

H = TypeVar("H", httpx.Client, httpx.AsyncClient)
TR = TypeVar("TR", httpx.BaseTransport, httpx.AsyncBaseTransport)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0
USER_AGENT = f"aimm-client-python/{__version__}"


@dataclass(frozen=True, slots=True)
class Settings:
    base_url: str
    api_key: str | None
    admin_token: str | None
    timeout: httpx.Timeout
    retry: RetryPolicy
    # Request ids: a random prefix per client and a counter (itertools.count is thread-safe in
    # CPython), unique without a system call per request.
    id_prefix: str = field(default_factory=lambda: secrets.token_hex(8) + "-")
    ids: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        admin_token: str | None,
        timeout: float | httpx.Timeout,
        retry: RetryPolicy,
    ) -> Settings:
        """Arguments win over AIMM_BASE_URL / AIMM_API_KEY / AIMM_ADMIN_TOKEN."""
        return cls(
            (base_url or os.environ.get("AIMM_BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            api_key or os.environ.get("AIMM_API_KEY"),
            admin_token or os.environ.get("AIMM_ADMIN_TOKEN"),
            timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            retry,
        )

    def default_headers(self) -> dict[str, str]:
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        """The request for one attempt. Only what differs from the client's defaults is passed
        (httpx merges each argument given, which costs more than the rest of the SDK's work)."""
        extra: dict[str, Any] = {}
        if call.params:
            extra["params"] = call.params
        if call.admin and self.admin_token:
            extra["headers"] = {"authorization": f"Bearer {self.admin_token}"}
        if call.timeout is not None:
            extra["timeout"] = call.timeout
        request = http.build_request(call.method, call.path, json=call.json, **extra)
        # A fresh request id per attempt: the gateway adopts it, so every error has one to quote.
        request.headers["x-request-id"] = f"{self.id_prefix}{next(self.ids)}"
        return request

    def ws_url(self, path: str, channels: list[str]) -> str:
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}?{urlencode({'channels': ','.join(channels)})}"


def api_error(response: httpx.Response) -> APIError:
    """The exception for an error response (its body must have been read)."""
    request_id = response.headers.get("x-request-id") or response.request.headers.get("x-request-id")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_from_body(
        body,
        status=response.status_code,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers),
    )


def decode_event(line: str, request_id: str | None) -> StreamChunk | None:
    """One SSE line of /api/v1/query/stream → a chunk; an error event raises its APIError."""
    if not line.startswith("data:"):
        return None
    event: JSON = json.loads(line[5:])
    kind = event.get("type")
    if kind == "content":
        return ContentChunk(event.get("text") or "")
    if kind == "usage":
        return FinalChunk.from_json(event)
    if kind == "error":
        raise error_from_body(event, status=None, request_id=request_id, during_stream=True)
    return None


class ClientCore(Generic[H, TR]):
    """The settings and connection pool of a client, sync (`httpx.Client`) or async."""

    _http_class: type[H]

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        admin_token: str | None = None,
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 2,
        retry_non_idempotent: bool = False,
        limits: httpx.Limits | None = None,
        transport: TR | None = None,
    ) -> None:
        policy = RetryPolicy(max_retries=max_retries, retry_non_idempotent=retry_non_idempotent)
        self._settings = Settings.resolve(base_url, api_key, admin_token, timeout, policy)
        self._http: H = self._http_class(
            base_url=self._settings.base_url,
            headers=self._settings.default_headers(),
            timeout=self._settings.timeout,
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,  # type: ignore[arg-type]  # TR is H's transport type
        )

    @property
    def base_url(self) -> str:
        return self._settings.base_url


class Attempts:
    """The retry rules (`_retry`) of one call, step by step: the clients only send and sleep.

    `after_failure` and `after_error` return how long to wait before the next attempt, or raise
    the error the caller gets when there is none."""

    def __init__(self, settings: Settings, call: Call) -> None:
        self._settings, self._call = settings, call
        self._number = 0

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        self._number += 1
        return self._settings.build(http, self._call)

    def after_failure(self, exc: httpx.TransportError) -> float:
        sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        delay = self._settings.retry.delay_for_connection(self._number, sent, self._call.safe_to_repeat)
        if delay is None:
            raise connection_error(exc) from exc
        return delay

    def after_error(self, response: httpx.Response) -> float:
        """For an error response whose body has been read."""
        error = api_error(response)
        policy = self._settings.retry
        delay = policy.delay_for_status(
            self._number, response.status_code, self._call.safe_to_repeat, error.retry_after
        )
        if delay is None:
            raise error
        return delay


@contextmanager
def transport_errors() -> Iterator[None]:
    """A connection lost while reading a stream raises APIConnectionError (or APITimeoutError)."""
    try:
        yield
    except httpx.TransportError as exc:
        raise connection_error(exc) from exc


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"timed out: {exc}")
    return APIConnectionError(f"connection failed: {exc}")


class StreamState:
    """What a stream holds, sync or async: its answer so far, and the chunks read from lines."""

    def __init__(self, call: Call) -> None:
        self._call = call
        self._response: httpx.Response | None = None
        self._request_id: str | None = None
        self.text = ""
        self.final: FinalChunk | None = None

    @property
    def request_id(self) -> str | None:
        return self._request_id

    def _opened(self, response: httpx.Response) -> httpx.Response:
        self._response = response
        self._request_id = response.headers.get("x-request-id") or response.request.headers.get("x-request-id")
        return response

    def _chunk(self, line: str) -> StreamChunk | None:
        """The chunk of one SSE line (None for comments and unknown events), kept in `text`/`final`."""
        chunk = decode_event(line, self._request_id)
        if chunk is not None and chunk.type == "content":
            self.text += chunk.text
        elif chunk is not None:
            self.final = chunk
        return chunk
