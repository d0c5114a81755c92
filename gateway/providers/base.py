"""The provider contract: canonical (OpenAI-shaped) request in, canonical response/chunks out.

Providers know wire formats, not routing: they translate, send through the pooled client and
turn upstream failures into `UpstreamError`s. Streams always end with a usage chunk
(`choices: []`, `usage: {...}`) so cost can be settled whatever the client asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from aimm_gateway.canonical import ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest
from aimm_gateway.config import ModelConfig, Timeouts

Req = TypeVar("Req", ChatRequest, EmbeddingRequest)


@dataclass(slots=True)
class _Call(Generic[Req]):
    """One upstream call: what chat and embedding calls both carry."""

    model: ModelConfig
    request: Req
    body: dict[str, Any]  # the client's JSON (OpenAI shape); unknown fields ride along to OpenAI upstreams
    api_key: str | None
    timeouts: Timeouts
    request_id: str
    trace_headers: dict[str, str] = field(default_factory=dict)  # W3C trace context, when tracing is on

    @property
    def headers(self) -> dict[str, str]:
        """Extra headers for the upstream: the model's configured ones plus the gateway's own."""
        return {**self.model.headers, **self.trace_headers} if self.trace_headers else self.model.headers


class UpstreamCall(_Call[ChatRequest]):
    __slots__ = ()


class EmbeddingCall(_Call[EmbeddingRequest]):
    __slots__ = ()


class ChatProvider(Protocol):
    async def complete(self, call: UpstreamCall) -> ChatCompletion: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]: ...

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]: ...
