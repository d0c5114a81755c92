"""The provider contract: canonical (OpenAI-shaped) request in, canonical response/chunks out.

Providers know wire formats, not routing: they translate, send through the pooled client and
turn upstream failures into `UpstreamError`s. Streams always end with a usage chunk
(`choices: []`, `usage: {...}`) so cost can be settled whatever the client asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aimm_gateway.canonical import ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest
from aimm_gateway.config import ModelConfig, Timeouts


@dataclass(slots=True)
class UpstreamCall:
    model: ModelConfig
    request: ChatRequest
    body: dict[str, Any]  # the client's JSON (OpenAI shape); unknown fields ride along to OpenAI upstreams
    api_key: str | None
    timeouts: Timeouts
    request_id: str
    trace_headers: dict[str, str] = field(default_factory=dict)  # W3C trace context, when tracing is on

    @property
    def headers(self) -> dict[str, str]:
        """Extra headers for the upstream: the model's configured ones plus the gateway's own."""
        return {**self.model.headers, **self.trace_headers} if self.trace_headers else self.model.headers


@dataclass(slots=True)
class EmbeddingCall:
    model: ModelConfig
    request: EmbeddingRequest
    body: dict[str, Any]
    api_key: str | None
    timeouts: Timeouts
    request_id: str
    trace_headers: dict[str, str] = field(default_factory=dict)  # W3C trace context, when tracing is on

    @property
    def headers(self) -> dict[str, str]:
        """Extra headers for the upstream: the model's configured ones plus the gateway's own."""
        return {**self.model.headers, **self.trace_headers} if self.trace_headers else self.model.headers


class ChatProvider(Protocol):
    async def complete(self, call: UpstreamCall) -> ChatCompletion: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]: ...

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]: ...
