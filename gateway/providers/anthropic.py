"""The Anthropic Messages wire format (`POST /v1/messages`) behind the OpenAI-shaped contract.

Translation lives in `anthropic_translate` (pure, unit-tested) and the shared plumbing in
`exchange`; this module only knows the URL and the auth headers. Streams end with a usage chunk
built from Anthropic's own token counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.errors import InvalidRequest
from aimm_gateway.providers.anthropic_translate import (
    ANTHROPIC_VERSION,
    AnthropicStreamTranslator,
    from_anthropic_response,
    json_tool_name,
    to_anthropic_request,
)
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.exchange import Upstream, translate_stream
from aimm_gateway.providers.http import UpstreamPools


class AnthropicProvider:
    def __init__(self, provider: str, base_url: str, pools: UpstreamPools) -> None:
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._upstream = Upstream(pools.for_url(base_url), provider)

    def _headers(self, api_key: str | None, extra: dict[str, str], accept: str) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": accept,
            "anthropic-version": ANTHROPIC_VERSION,
            **extra,  # e.g. anthropic-beta from the model's config
        }
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        body = orjson.dumps(to_anthropic_request(call.request, call.model, stream=False))
        headers = self._headers(call.api_key, call.headers, "application/json")
        return await messages(self._upstream, self._url, headers, body, call)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        body = orjson.dumps(to_anthropic_request(call.request, call.model, stream=True))
        headers = self._headers(call.api_key, call.headers, "text/event-stream")
        async for out in messages_stream(self._upstream, self._url, headers, body, call):
            yield out

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        raise InvalidRequest(f"model {call.model.name!r}: the Anthropic API does not support embeddings", param="model")


# Shared with Claude on Vertex AI, which differs only in URL, auth and two body fields.


async def messages(
    upstream: Upstream, url: str, headers: dict[str, str], body: bytes, call: UpstreamCall
) -> ChatCompletion:
    """One Messages round trip; like the OpenAI adapter, the answer names the upstream model."""
    msg = await upstream.post_json(url, headers, body, call.timeouts)
    return from_anthropic_response(msg, call.model.upstream_model, json_tool=json_tool_name(call.request))


async def messages_stream(
    upstream: Upstream, url: str, headers: dict[str, str], body: bytes, call: UpstreamCall
) -> AsyncIterator[ChatChunk]:
    """A Messages SSE stream as OpenAI chunks, ending with the usage chunk."""
    translator = AnthropicStreamTranslator(
        call.model.upstream_model, json_tool=json_tool_name(call.request), provider=upstream.provider
    )
    async with upstream.stream(url, headers, body, call.timeouts) as resp:
        # Without message_stop the answer may be cut short: the client must see an error, not an end.
        async for out in translate_stream(upstream.sse(resp), translator, upstream.provider, terminal="message_stop"):
            yield out
