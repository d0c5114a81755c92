"""The Cohere v2 chat wire format (`POST /v2/chat`, `POST /v2/embed`) behind the OpenAI-shaped contract.

Translation lives in `cohere_translate` (pure, unit-tested); this module only sends, streams and
maps failures. Cohere's errors are `{"message": ...}` with the HTTP status, which the shared
`upstream_error` already reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.cohere_translate import (
    CohereStreamTranslator,
    from_cohere_embed_response,
    from_cohere_response,
    to_cohere_embed_request,
    to_cohere_request,
)
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.providers.sse import iter_sse

_JSON = "application/json"


class CohereProvider:
    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        self._provider = model.provider
        base = endpoint.rstrip("/")
        self._chat_url = f"{base}/v2/chat"
        self._embed_url = f"{base}/v2/embed"
        self._client = pools.for_url(endpoint)

    def _headers(self, api_key: str | None, extra: dict[str, str], accept: str) -> dict[str, str]:
        headers = {**extra, "content-type": _JSON, "accept": accept}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        body = orjson.dumps(to_cohere_request(call.request, call.model, stream=False))
        headers = self._headers(call.api_key, call.model.headers, _JSON)
        resp = await self._client.post(self._chat_url, headers, body, call.timeouts)
        if resp.status >= 400:
            raise upstream_error(self._provider, resp.status, resp.headers, resp.body)
        # Like the OpenAI adapter, answers name the upstream model that produced them.
        return from_cohere_response(_decode(self._provider, resp.body), call.model.upstream_model)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        body = orjson.dumps(to_cohere_request(call.request, call.model, stream=True))
        headers = self._headers(call.api_key, call.model.headers, "text/event-stream")
        translator = CohereStreamTranslator(call.model.upstream_model)
        async with self._client.stream(self._chat_url, headers, body, call.timeouts) as resp:
            if resp.status >= 400:
                raise upstream_error(self._provider, resp.status, resp.headers, await resp.read_all())
            async for event in iter_sse(resp.chunks):
                if event.data == "[DONE]":
                    break  # some deployments end with the OpenAI-style sentinel
                for out in translator.feed(event.event, _decode(self._provider, event.data)):
                    yield out
                if translator.done:
                    yield translator.final_usage_chunk()
                    return
        # Without message-end the answer may be cut short: the client must see an error, not an end.
        raise UpstreamError(f"{self._provider} stream ended before message-end", kind="connection")

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        body = orjson.dumps(to_cohere_embed_request(call.request, call.model))
        headers = self._headers(call.api_key, call.model.headers, _JSON)
        resp = await self._client.post(self._embed_url, headers, body, call.timeouts)
        if resp.status >= 400:
            raise upstream_error(self._provider, resp.status, resp.headers, resp.body)
        data = _decode(self._provider, resp.body)
        return from_cohere_embed_response(data, call.model.upstream_model, call.request.encoding_format)


def _decode(provider: str, raw: bytes | str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{provider} returned invalid JSON", kind="http") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{provider} returned an unexpected JSON value", kind="http")
    return data
