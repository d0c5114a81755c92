"""The provider contract: canonical (OpenAI-shaped) request in, canonical response/chunks out.

Providers know wire formats, not routing: they translate, send through the pooled client and
turn upstream failures into `UpstreamError`s. Streams always end with a usage chunk
(`choices: []`, `usage: {...}`) so cost can be settled whatever the client asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass(slots=True)
class EmbeddingCall:
    model: ModelConfig
    request: EmbeddingRequest
    body: dict[str, Any]
    api_key: str | None
    timeouts: Timeouts
    request_id: str


class ChatProvider(Protocol):
    async def complete(self, call: UpstreamCall) -> ChatCompletion: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]: ...

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]: ...
