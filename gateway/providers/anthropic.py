"""The Anthropic Messages wire format (`POST /v1/messages`) behind the OpenAI-shaped contract.

Translation lives in `anthropic_translate` (pure, unit-tested); this module only sends, streams
and maps failures. Streams end with a usage chunk built from Anthropic's own token counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.anthropic_translate import (
    ANTHROPIC_VERSION,
    AnthropicStreamTranslator,
    from_anthropic_response,
    json_tool_name,
    to_anthropic_request,
)
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.sse import iter_sse


class AnthropicProvider:
    def __init__(self, provider: str, base_url: str, pools: UpstreamPools) -> None:
        self._provider = provider
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._client = pools.for_url(base_url)

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
        body = to_anthropic_request(call.request, call.model, stream=False)
        headers = self._headers(call.api_key, call.model.headers, "application/json")
        resp = await self._client.post(self._url, headers, orjson.dumps(body), call.timeouts)
        if resp.status >= 400:
            raise upstream_error(self._provider, resp.status, resp.headers, resp.body)
        msg = _decode(self._provider, resp.body)
        # Like the OpenAI adapter, answers name the upstream model that produced them.
        return from_anthropic_response(msg, call.model.upstream_model, json_tool=json_tool_name(call.request))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        body = to_anthropic_request(call.request, call.model, stream=True)
        headers = self._headers(call.api_key, call.model.headers, "text/event-stream")
        translator = AnthropicStreamTranslator(
            call.model.upstream_model, json_tool=json_tool_name(call.request), provider=self._provider
        )
        async with self._client.stream(self._url, headers, orjson.dumps(body), call.timeouts) as resp:
            if resp.status >= 400:
                raise upstream_error(self._provider, resp.status, resp.headers, await resp.read_all())
            async for event in iter_sse(resp.chunks):
                for out in translator.feed(event.event, _decode(self._provider, event.data)):
                    yield out
                if translator.done:
                    yield translator.final_usage_chunk()
                    return
        # Without message_stop the answer may be cut short: the client must see an error, not an end.
        raise UpstreamError(f"{self._provider} stream ended before message_stop", kind="connection")

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        raise InvalidRequest(f"model {call.model.name!r}: the Anthropic API does not support embeddings", param="model")


def _decode(provider: str, raw: bytes | str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{provider} returned invalid JSON", kind="http") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{provider} returned an unexpected JSON value", kind="http")
    return data
