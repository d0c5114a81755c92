"""The Google Gemini API wire format (`generateContent`, `streamGenerateContent`, `batchEmbedContents`).

Translation lives in `gemini_translate` (pure, unit-tested); this module only sends, streams and
maps failures. `generate` / `stream_generate` are shared with Gemini on Vertex AI, which takes the
same bodies at other URLs with other credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.gemini_translate import (
    GeminiStreamTranslator,
    embedding_texts,
    from_batch_embed_response,
    from_gemini_response,
    gemini_error,
    to_batch_embed_request,
    to_gemini_request,
)
from aimm_gateway.providers.http import UpstreamClient, UpstreamPools
from aimm_gateway.providers.sse import iter_sse

_API_VERSIONS = ("/v1beta", "/v1", "/v1alpha")


class GeminiProvider:
    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        self._provider = model.provider
        self._model_name = model_id(model.upstream_model)
        root = f"{api_root(endpoint)}/models/{quote(self._model_name, safe='@')}"
        self._generate_url = f"{root}:generateContent"
        self._stream_url = f"{root}:streamGenerateContent?alt=sse"
        self._embed_url = f"{root}:batchEmbedContents"
        self._client = pools.for_url(endpoint)

    def _headers(self, call_model: ModelConfig, api_key: str | None, accept: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": accept, **call_model.headers}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        headers = self._headers(call.model, call.api_key, "application/json")
        return await generate(self._client, self._generate_url, headers, call, self._provider)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        headers = self._headers(call.model, call.api_key, "text/event-stream")
        async for out in stream_generate(self._client, self._stream_url, headers, call, self._provider):
            yield out

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        texts = embedding_texts(call.request)
        body = to_batch_embed_request(call.request, self._model_name, texts)
        headers = self._headers(call.model, call.api_key, "application/json")
        resp = await self._client.post(self._embed_url, headers, orjson.dumps(body), call.timeouts)
        if resp.status >= 400:
            raise gemini_error(self._provider, resp.status, resp.headers, resp.body)
        data = decode(self._provider, resp.body)
        return from_batch_embed_response(data, call.model.upstream_model, texts, call.request.encoding_format)


async def generate(
    client: UpstreamClient, url: str, headers: dict[str, str], call: UpstreamCall, provider: str
) -> ChatCompletion:
    """One non-streaming `generateContent` round trip, translated both ways."""
    body = to_gemini_request(call.request, call.model)
    resp = await client.post(url, headers, orjson.dumps(body), call.timeouts)
    if resp.status >= 400:
        raise gemini_error(provider, resp.status, resp.headers, resp.body)
    # Like the other adapters, answers name the upstream model that produced them.
    return from_gemini_response(
        decode(provider, resp.body),
        call.model.upstream_model,
        parallel_tool_calls=call.request.parallel_tool_calls is not False,
    )


async def stream_generate(
    client: UpstreamClient, url: str, headers: dict[str, str], call: UpstreamCall, provider: str
) -> AsyncIterator[ChatChunk]:
    """`streamGenerateContent?alt=sse` as OpenAI chunks, ending with the usage chunk."""
    body = to_gemini_request(call.request, call.model)
    translator = GeminiStreamTranslator(
        call.model.upstream_model, parallel_tool_calls=call.request.parallel_tool_calls is not False, provider=provider
    )
    async with client.stream(url, headers, orjson.dumps(body), call.timeouts) as resp:
        if resp.status >= 400:
            raise gemini_error(provider, resp.status, resp.headers, await resp.read_all())
        async for event in iter_sse(resp.chunks):
            for out in translator.feed(decode(provider, event.data)):
                yield out
    # Gemini has no terminal event: without a finishReason the answer may be cut short.
    if not translator.finished:
        raise UpstreamError(f"{provider} stream ended before a finishReason", kind="connection")
    yield translator.final_usage_chunk()


def api_root(endpoint: str) -> str:
    """`{endpoint}/v1beta`, unless the configured base URL already names an API version."""
    base = endpoint.rstrip("/")
    return base if base.endswith(_API_VERSIONS) else f"{base}/v1beta"


def model_id(upstream_model: str) -> str:
    return upstream_model.removeprefix("models/")  # Google's resource names carry this prefix


def decode(provider: str, raw: bytes | str) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{provider} returned invalid JSON", kind="http") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{provider} returned an unexpected JSON value", kind="http")
    return data
