"""The Cohere v2 chat wire format (`POST /v2/chat`, `POST /v2/embed`) behind the OpenAI-shaped contract.

Translation lives in `cohere_translate` (pure, unit-tested) and the shared plumbing in `exchange`;
this module only knows the URLs and the auth header. Cohere's errors are `{"message": ...}` with
the HTTP status, which the shared `upstream_error` already reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import ModelConfig
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.cohere_translate import (
    CohereStreamTranslator,
    from_cohere_embed_response,
    from_cohere_response,
    to_cohere_embed_request,
    to_cohere_request,
)
from aimm_gateway.providers.exchange import Upstream, translate_stream
from aimm_gateway.providers.http import UpstreamPools

_JSON = "application/json"


class CohereProvider:
    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        base = endpoint.rstrip("/")
        self._chat_url = f"{base}/v2/chat"
        self._embed_url = f"{base}/v2/embed"
        self._upstream = Upstream(pools.for_url(endpoint), model.provider)

    def _headers(self, api_key: str | None, extra: dict[str, str], accept: str) -> dict[str, str]:
        headers = {**extra, "content-type": _JSON, "accept": accept}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return headers

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        body = orjson.dumps(to_cohere_request(call.request, call.model, stream=False))
        headers = self._headers(call.api_key, call.headers, _JSON)
        data = await self._upstream.post_json(self._chat_url, headers, body, call.timeouts)
        # Like the OpenAI adapter, answers name the upstream model that produced them.
        return from_cohere_response(data, call.model.upstream_model)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        body = orjson.dumps(to_cohere_request(call.request, call.model, stream=True))
        headers = self._headers(call.api_key, call.headers, "text/event-stream")
        translator = CohereStreamTranslator(call.model.upstream_model)
        upstream = self._upstream
        async with upstream.stream(self._chat_url, headers, body, call.timeouts) as resp:
            # Some deployments end with the OpenAI-style [DONE], which the translator ignores; without
            # message-end the answer may be cut short: the client must see an error, not an end.
            events = upstream.sse(resp)
            async for out in translate_stream(events, translator, upstream.provider, terminal="message-end"):
                yield out

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        body = orjson.dumps(to_cohere_embed_request(call.request, call.model))
        headers = self._headers(call.api_key, call.headers, _JSON)
        data = await self._upstream.post_json(self._embed_url, headers, body, call.timeouts)
        return from_cohere_embed_response(data, call.model.upstream_model, call.request.encoding_format)
