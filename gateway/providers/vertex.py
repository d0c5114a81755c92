"""Google Vertex AI: Gemini (`publishers/google`) and Claude (`publishers/anthropic`) models.

Gemini on Vertex takes the Gemini API's bodies (`gemini_translate`) at
`{endpoint}/v1/projects/P/locations/L/publishers/google/models/M:generateContent`; Claude on Vertex
takes an Anthropic Messages body without `model` and with `anthropic_version` at `...:rawPredict`
(`anthropic_translate`). Both authenticate with an OAuth access token from a service account (or
application default credentials), refreshed off the event loop only when it is about to expire.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import google.auth
import orjson
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import ModelConfig, VertexSettings
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.anthropic import messages, messages_stream
from aimm_gateway.providers.anthropic_translate import to_anthropic_request
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.exchange import Upstream
from aimm_gateway.providers.gemini import generate, stream_generate
from aimm_gateway.providers.gemini_translate import (
    embedding_texts,
    from_vertex_predict_response,
    gemini_error,
    to_vertex_predict_request,
)
from aimm_gateway.providers.http import UpstreamPools

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ANTHROPIC_VERTEX_VERSION = "vertex-2023-10-16"
_REFRESH_MARGIN_S = 300.0  # refresh this long before expiry, so no request carries a dying token
_TOKEN_HTTP_TIMEOUT_S = 30.0


class GoogleAccessTokens:
    """OAuth access tokens for one set of Google credentials, cached until they near expiry.

    `load` builds the google-auth credentials; it runs in a worker thread on first use because
    application default credentials may probe the metadata server. Refreshes (blocking HTTP in
    google-auth) also run in a thread, one at a time: concurrent requests wait for the same refresh.
    """

    def __init__(
        self,
        load: Callable[[], Any],
        *,
        margin_s: float = _REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._margin_s = margin_s
        self._clock = clock
        self._credentials: Any = None
        self._request: Any = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def _valid_token(self) -> str | None:
        if self._token is not None and self._clock() < self._expires_at - self._margin_s:
            return self._token
        return None

    async def token(self) -> str:
        token = self._valid_token()
        if token is not None:
            return token
        async with self._lock:
            valid = self._valid_token()  # another request may have refreshed while this one waited
            if valid is not None:
                return valid
            fresh, self._expires_at = await asyncio.to_thread(self._refresh)
            self._token = fresh
            return fresh

    def _refresh(self) -> tuple[str, float]:
        """Blocking: runs in a worker thread, under the lock."""
        try:
            if self._credentials is None:
                self._credentials = self._load()
            if self._request is None:
                self._request = functools.partial(Request(), timeout=_TOKEN_HTTP_TIMEOUT_S)
            self._credentials.refresh(self._request)
        except GoogleAuthError as exc:
            # google-auth's messages name the failing step (invalid_grant, no ADC); never key material.
            raise UpstreamError(
                f"vertex: could not get a Google access token: {exc}", status=502, kind="upstream_auth"
            ) from None
        token = self._credentials.token
        if not token:
            raise UpstreamError("vertex: the token endpoint returned no access token", kind="upstream_auth")
        return str(token), self._expiry(self._credentials.expiry)

    def _expiry(self, expiry: datetime | None) -> float:
        if expiry is None:
            return self._clock() + 3600.0  # no lifetime given: Google's tokens last an hour
        # google-auth keeps expiry as naive UTC; turn it into seconds on our clock.
        remaining = (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()
        return self._clock() + remaining


def credentials_loader(settings: VertexSettings) -> tuple[Callable[[], Any] | None, str | None]:
    """A loader for the model's credentials, or the reason there can't be one.

    A service-account key (`vertex.credentials`) is parsed now, so a missing or broken key makes the
    model unusable at config load instead of failing each request; ADC is resolved on first use.
    """
    ref = settings.credentials
    if ref is None:
        return _default_credentials, None
    raw = ref.resolve()
    if raw is None:
        return None, f"no Vertex credentials ({ref.describe()} is not set)"
    try:
        info = orjson.loads(raw)
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        creds = service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM_SCOPE])
    except (ValueError, TypeError, KeyError) as exc:
        # The message names what is wrong (missing fields, bad JSON), never the key itself.
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return None, f"Vertex credentials ({ref.describe()}) are not a service-account key: {reason}"
    return (lambda: creds), None


def _default_credentials() -> Any:
    creds, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return creds


class VertexProvider:
    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        settings = model.vertex
        assert settings is not None  # config validation requires `vertex:` for provider vertex
        self._publisher = settings.publisher
        name = quote(model.upstream_model, safe="@")
        root = (
            f"{endpoint.rstrip('/')}/v1/projects/{settings.project}/locations/{settings.location}"
            f"/publishers/{settings.publisher}/models/{name}"
        )
        if settings.publisher == "anthropic":
            self._complete_url = f"{root}:rawPredict"
            self._stream_url = f"{root}:streamRawPredict"
        else:
            self._complete_url = f"{root}:generateContent"
            self._stream_url = f"{root}:streamGenerateContent?alt=sse"
        self._predict_url = f"{root}:predict"
        # Gemini's errors carry Google's RetryInfo; Claude's are Anthropic's, read by the shared mapping.
        on_error = gemini_error if settings.publisher == "google" else upstream_error
        self._upstream = Upstream(pools.for_url(endpoint), model.provider, on_error)
        load, self._problem = credentials_loader(settings)
        self._tokens = GoogleAccessTokens(load) if load is not None else None

    def unusable_reason(self) -> str | None:
        return self._problem

    async def _headers(self, extra: dict[str, str], accept: str) -> dict[str, str]:
        if self._tokens is None:
            raise UpstreamError(f"vertex: {self._problem}", kind="upstream_auth")
        token = await self._tokens.token()
        return {
            "content-type": "application/json",
            "accept": accept,
            **extra,  # the model's (e.g. anthropic-beta) and trace context
            "authorization": f"Bearer {token}",
        }

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        headers = await self._headers(call.headers, "application/json")
        if self._publisher == "google":
            return await generate(self._upstream, self._complete_url, headers, call)
        body = orjson.dumps(anthropic_vertex_body(call, stream=False))
        return await messages(self._upstream, self._complete_url, headers, body, call)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        headers = await self._headers(call.headers, "text/event-stream")
        if self._publisher == "google":
            chunks = stream_generate(self._upstream, self._stream_url, headers, call)
        else:
            body = orjson.dumps(anthropic_vertex_body(call, stream=True))
            chunks = messages_stream(self._upstream, self._stream_url, headers, body, call)
        async for out in chunks:
            yield out

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        if self._publisher != "google":
            raise InvalidRequest(
                f"model {call.model.name!r}: Anthropic models on Vertex AI do not support embeddings", param="model"
            )
        texts = embedding_texts(call.request)
        headers = await self._headers(call.headers, "application/json")
        body = orjson.dumps(to_vertex_predict_request(call.request, texts))
        data = await self._upstream.post_json(self._predict_url, headers, body, call.timeouts)
        return from_vertex_predict_response(data, call.model.upstream_model, call.request.encoding_format)


def anthropic_vertex_body(call: UpstreamCall, *, stream: bool) -> dict[str, Any]:
    """An Anthropic Messages body as Vertex takes it: the model is in the URL, the version in the body."""
    body = to_anthropic_request(call.request, call.model, stream=stream)
    del body["model"]
    return {"anthropic_version": ANTHROPIC_VERTEX_VERSION, **body}
