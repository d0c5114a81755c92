"""`provider: mock`: the mock upstream's engine served in-process (no socket).

It speaks the OpenAI wire format through the same functions the `aimm mock-provider` server
uses, so a demo config runs with no network and no keys, and behaves like the real mock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import MockSettings
from aimm_gateway.errors import UpstreamError
from aimm_gateway.mock import engine, openai_wire
from aimm_gateway.mock.engine import MockValidationError
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall


class MockProvider:
    def __init__(self, settings: MockSettings) -> None:
        self._settings = settings

    def _body(self, call: UpstreamCall, stream: bool) -> dict[str, Any]:
        body = {**call.body, "model": call.model.upstream_model}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        body = self._body(call, stream=False)
        out = engine.generate(_parse(body))
        if self._settings.latency_ms:
            await asyncio.sleep(self._settings.latency_ms / 1000)
        return openai_wire.render_completion(body, out)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        body = self._body(call, stream=True)
        out = engine.generate(_parse(body))
        if self._settings.latency_ms:
            await asyncio.sleep(self._settings.latency_ms / 1000)
        interval = self._settings.chunk_interval_ms / 1000
        for i, piece in enumerate(openai_wire.render_stream(body, out, self._settings.stream_chunks)):
            if interval and i:
                await asyncio.sleep(interval)
            yield piece

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        body = {**call.body, "model": call.model.upstream_model}
        try:
            return openai_wire.render_embeddings(body)
        except MockValidationError as exc:
            raise _as_upstream(exc) from None


def _parse(body: dict[str, Any]) -> engine.MockInput:
    try:
        return openai_wire.parse_request(body, allow_unknown=True)
    except MockValidationError as exc:
        raise _as_upstream(exc) from None


def _as_upstream(exc: MockValidationError) -> UpstreamError:
    err = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
    message = err.get("message") if isinstance(err, dict) else None
    return UpstreamError(
        f"mock upstream error: {message or exc}",
        status=exc.status,
        retryable=exc.status >= 500 or exc.status == 429,
        kind="invalid_request" if exc.status < 500 else "http",
        param=err.get("param") if isinstance(err, dict) else None,
        type="invalid_request_error" if exc.status < 500 else None,
    )
