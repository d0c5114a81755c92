"""What the sync and async clients share: settings, headers, error decoding, event decoding."""

from __future__ import annotations

import itertools
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from aimm_client._ops import Call
from aimm_client._retry import RetryPolicy, parse_retry_after
from aimm_client._version import __version__
from aimm_client.errors import APIError, error_from_body
from aimm_client.types import JSON, ContentChunk, FinalChunk, StreamChunk

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

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call, timeout: float | None) -> httpx.Request:
        """The request for one attempt. Only what differs from the client's defaults is passed
        (httpx merges each argument given, which costs more than the rest of the SDK's work)."""
        extra: dict[str, Any] = {}
        if call.params:
            extra["params"] = call.params
        if call.admin and self.admin_token:
            extra["headers"] = {"authorization": f"Bearer {self.admin_token}"}
        if timeout is not None:
            extra["timeout"] = timeout
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


def json_body(response: httpx.Response) -> JSON:
    data: JSON = response.json()
    return data


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


def client_kwargs(settings: Settings, limits: httpx.Limits | None) -> Mapping[str, Any]:
    return {
        "base_url": settings.base_url,
        "headers": settings.default_headers(),
        "timeout": settings.timeout,
        "limits": limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
    }
