"""The Google Gemini API wire format (`generateContent`, `streamGenerateContent`, `batchEmbedContents`).

Translation lives in `gemini_translate` (pure, unit-tested) and the shared plumbing in `exchange`;
this module only knows the URLs and the auth header. `generate` / `stream_generate` are shared
with Gemini on Vertex AI, which takes the same bodies at other URLs with other credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import ModelConfig
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.exchange import Upstream, translate_stream
from aimm_gateway.providers.gemini_translate import (
    GeminiStreamTranslator,
    embedding_texts,
    from_batch_embed_response,
    from_gemini_response,
    gemini_error,
    to_batch_embed_request,
    to_gemini_request,
)
from aimm_gateway.providers.http import UpstreamPools

_API_VERSIONS = ("/v1beta", "/v1", "/v1alpha")


class GeminiProvider:
    def __init__(self, model: ModelConfig, endpoint: str, pools: UpstreamPools) -> None:
        self._model_name = model_id(model.upstream_model)
        root = f"{api_root(endpoint)}/models/{quote(self._model_name, safe='@')}"
        self._generate_url = f"{root}:generateContent"
        self._stream_url = f"{root}:streamGenerateContent?alt=sse"
        self._embed_url = f"{root}:batchEmbedContents"
        self._upstream = Upstream(pools.for_url(endpoint), model.provider, gemini_error)

    def _headers(self, extra: dict[str, str], api_key: str | None, accept: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": accept, **extra}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    async def complete(self, call: UpstreamCall) -> ChatCompletion:
        headers = self._headers(call.headers, call.api_key, "application/json")
        return await generate(self._upstream, self._generate_url, headers, call)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[ChatChunk]:
        headers = self._headers(call.headers, call.api_key, "text/event-stream")
        async for out in stream_generate(self._upstream, self._stream_url, headers, call):
            yield out

    async def embed(self, call: EmbeddingCall) -> dict[str, Any]:
        texts = embedding_texts(call.request)
        body = orjson.dumps(to_batch_embed_request(call.request, self._model_name, texts))
        headers = self._headers(call.headers, call.api_key, "application/json")
        data = await self._upstream.post_json(self._embed_url, headers, body, call.timeouts)
        return from_batch_embed_response(data, call.model.upstream_model, texts, call.request.encoding_format)


async def generate(upstream: Upstream, url: str, headers: dict[str, str], call: UpstreamCall) -> ChatCompletion:
    """One non-streaming `generateContent` round trip, translated both ways."""
    body = orjson.dumps(to_gemini_request(call.request, call.model))
    data = await upstream.post_json(url, headers, body, call.timeouts)
    # Like the other adapters, answers name the upstream model that produced them.
    return from_gemini_response(
        data, call.model.upstream_model, parallel_tool_calls=call.request.parallel_tool_calls is not False
    )


async def stream_generate(
    upstream: Upstream, url: str, headers: dict[str, str], call: UpstreamCall
) -> AsyncIterator[ChatChunk]:
    """`streamGenerateContent?alt=sse` as OpenAI chunks, ending with the usage chunk."""
    body = orjson.dumps(to_gemini_request(call.request, call.model))
    translator = _Events(
        GeminiStreamTranslator(
            call.model.upstream_model,
            parallel_tool_calls=call.request.parallel_tool_calls is not False,
            provider=upstream.provider,
        )
    )
    async with upstream.stream(url, headers, body, call.timeouts) as resp:
        # Gemini has no terminal event: without a finishReason the answer may be cut short.
        async for out in translate_stream(
            upstream.sse(resp),
            translator,
            upstream.provider,
            terminal="a finishReason",
            complete=lambda: translator.inner.finished,
        ):
            yield out


class _Events:
    """Gemini's translator as the shared loop drives it: events carry no names, none is terminal."""

    __slots__ = ("inner",)
    done = False  # read to the end: the last chunk may still bring usage

    def __init__(self, inner: GeminiStreamTranslator) -> None:
        self.inner = inner

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]:
        return self.inner.feed(data)

    def final_usage_chunk(self) -> ChatChunk:
        return self.inner.final_usage_chunk()


def api_root(endpoint: str) -> str:
    """`{endpoint}/v1beta`, unless the configured base URL already names an API version."""
    base = endpoint.rstrip("/")
    return base if base.endswith(_API_VERSIONS) else f"{base}/v1beta"


def model_id(upstream_model: str) -> str:
    return upstream_model.removeprefix("models/")  # Google's resource names carry this prefix
