"""GeminiProvider over a scripted transport: URLs, headers, error mapping and stream endings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from aimm_gateway.canonical import validate_chat, validate_embeddings
from aimm_gateway.config import ModelConfig, Timeouts
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.gemini import GeminiProvider, api_root
from aimm_gateway.providers.http import UpstreamClient, UpstreamPools, UpstreamResponse, UpstreamStream
from tests.unit.test_anthropic_adapter import assert_openai_chunks

TIMEOUTS = Timeouts(connect_s=1, first_byte_s=1, total_s=1, stream_idle_s=1)


class ScriptedClient:
    """Answers every request with one canned status/body (or SSE frames) and records what was sent."""

    def __init__(self, status: int = 200, body: Any = None, frames: list[bytes] | None = None,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.status, self.body, self.frames, self.headers = status, body, frames or [], headers or {}
        self.sent: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse:
        self.sent.append((url, headers, orjson.loads(body)))
        return UpstreamResponse(self.status, self.headers, orjson.dumps(self.body))

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[UpstreamStream]:
        self.sent.append((url, headers, orjson.loads(body)))

        async def chunks() -> AsyncIterator[bytes]:
            for frame in self.frames:
                yield frame

        yield UpstreamStream(self.status, self.headers, chunks())

    async def close(self) -> None:
        return None


class ScriptedPools(UpstreamPools):
    def __init__(self, client: ScriptedClient) -> None:
        super().__init__()
        self.client = client

    def for_url(self, url: str) -> UpstreamClient:
        return self.client


def provider(client: ScriptedClient, base_url: str = "https://generativelanguage.googleapis.com",
             model: str = "models/gemini-2.5-flash") -> tuple[GeminiProvider, ModelConfig]:  # fmt: skip
    config = ModelConfig(name="gem", provider="gemini", model=model, base_url=base_url, headers={"x-extra": "1"})
    return GeminiProvider(config, config.endpoint or "", ScriptedPools(client)), config


def call(config: ModelConfig, **body: Any) -> UpstreamCall:
    full = {"model": "gem", "messages": [{"role": "user", "content": "hi"}], **body}
    return UpstreamCall(config, validate_chat(full), full, "secret-key", TIMEOUTS, "req-1")


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events]


TEXT: dict[str, Any] = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi!"}]}, "index": 0}],
    "responseId": "r1",
}
DONE: dict[str, Any] = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": " Bye."}]}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7},
    "responseId": "r1",
}


@pytest.mark.parametrize(
    ("base", "root"),
    [
        ("https://generativelanguage.googleapis.com", "https://generativelanguage.googleapis.com/v1beta"),
        ("https://proxy.example/gemini/", "https://proxy.example/gemini/v1beta"),
        ("https://proxy.example/v1", "https://proxy.example/v1"),
        ("https://proxy.example/v1beta", "https://proxy.example/v1beta"),
    ],
)
def test_api_root(base: str, root: str) -> None:
    assert api_root(base) == root


async def test_complete_sends_to_generate_content_with_the_api_key() -> None:
    client = ScriptedClient(body=DONE)
    gemini, config = provider(client)
    completion = await gemini.complete(call(config))
    url, headers, body = client.sent[0]
    assert url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert headers["x-goog-api-key"] == "secret-key" and headers["x-extra"] == "1"
    assert "authorization" not in headers
    assert body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert completion["choices"][0]["message"]["content"] == " Bye."
    assert completion["model"] == "models/gemini-2.5-flash"


async def test_stream_ends_with_usage_after_the_finish_reason() -> None:
    client = ScriptedClient(frames=sse(TEXT, DONE))
    gemini, config = provider(client)
    chunks = [c async for c in gemini.stream(call(config))]
    assert client.sent[0][0].endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert client.sent[0][1]["accept"] == "text/event-stream"
    assert_openai_chunks(chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hi! Bye."
    assert chunks[-1]["usage"]["total_tokens"] == 7


async def test_stream_that_closes_before_a_finish_reason_is_an_error() -> None:
    gemini, config = provider(ScriptedClient(frames=sse(TEXT)))
    received = []
    with pytest.raises(UpstreamError, match="before a finishReason") as err:
        async for c in gemini.stream(call(config)):
            received.append(c)
    assert received and err.value.kind == "connection"
    assert not any(c.get("usage") for c in received)  # no usage chunk: the answer was not complete


async def test_stream_error_status_is_mapped_before_any_chunk() -> None:
    body = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}  # fmt: skip
    gemini, config = provider(ScriptedClient(status=429, frames=[orjson.dumps(body)]))
    with pytest.raises(UpstreamError) as err:
        await anext(gemini.stream(call(config)))
    assert (err.value.status, err.value.retry_after_s, err.value.kind) == (429, 12.0, "rate_limited")


async def test_invalid_json_from_upstream_is_an_upstream_error() -> None:
    gemini, config = provider(ScriptedClient(frames=[b"data: {not json\r\n\r\n"]))
    with pytest.raises(UpstreamError, match="invalid JSON"):
        await anext(gemini.stream(call(config)))


async def test_embed_uses_batch_embed_contents() -> None:
    client = ScriptedClient(body={"embeddings": [{"values": [0.1, 0.2]}]})
    gemini, config = provider(client, model="gemini-embedding-001")
    body = {"model": "gem", "input": "hello", "dimensions": 2}
    out = await gemini.embed(EmbeddingCall(config, validate_embeddings(body), body, "k", TIMEOUTS, "r"))
    url, _headers, sent = client.sent[0]
    assert url.endswith("/v1beta/models/gemini-embedding-001:batchEmbedContents")
    assert sent["requests"][0]["model"] == "models/gemini-embedding-001"
    assert out["data"][0]["embedding"] == [0.1, 0.2]
