"""AzureOpenAIProvider: URLs, auth headers, body, error mapping and stream clean-up.

A recording upstream client stands in for the network here (the HTTP path is covered by
tests/gateway/test_azure_http.py); its answers are the Azure mock's, so they are real shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion

from aimm_gateway.canonical import validate_chat, validate_embeddings
from aimm_gateway.config import ModelConfig, Timeouts
from aimm_gateway.errors import UpstreamError
from aimm_gateway.mock import azure_wire
from aimm_gateway.mock.engine import generate
from aimm_gateway.providers.azure import AzureOpenAIProvider, deployment_base_url
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.providers.http import UpstreamPools, UpstreamResponse, UpstreamStream
from aimm_gateway.providers.registry import build_provider

ENDPOINT = "https://myres.openai.azure.com"
KEY = "azure-key"
TIMEOUTS = Timeouts(connect_s=1, first_byte_s=5, total_s=5, stream_idle_s=5)


@dataclass
class Sent:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class RecordingClient:
    status: int = 200
    answer: bytes = b"{}"
    frames: list[bytes] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse:
        self.sent.append(Sent(url, headers, orjson.loads(body)))
        return UpstreamResponse(self.status, {}, self.answer)

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[UpstreamStream]:
        self.sent.append(Sent(url, headers, orjson.loads(body)))

        async def chunks() -> AsyncIterator[bytes]:
            for frame in self.frames:
                yield frame

        yield UpstreamStream(self.status, {}, chunks())

    async def close(self) -> None:
        return None


class FakePools(UpstreamPools):
    def __init__(self, client: RecordingClient) -> None:
        super().__init__()
        self.client = client
        self.origins: list[str] = []

    def for_url(self, url: str) -> Any:
        self.origins.append(url)
        return self.client


def model(**extra: Any) -> ModelConfig:
    return ModelConfig(name="az", provider="azure", model="gpt-4o", base_url=ENDPOINT, **extra)


def chat_call(m: ModelConfig, **body: Any) -> UpstreamCall:
    payload = {"model": "az", "messages": [{"role": "user", "content": "Hello Azure"}], **body}
    return UpstreamCall(m, validate_chat(payload), payload, KEY, TIMEOUTS, "req-1")


def azure_answer(body: dict[str, Any]) -> bytes:
    b = azure_wire.with_deployment(body, "gpt-4o")
    return orjson.dumps(azure_wire.render_completion(b, generate(azure_wire.parse_request(b))))


def azure_frames(body: dict[str, Any]) -> list[bytes]:
    b = azure_wire.with_deployment({**body, "stream": True, "stream_options": {"include_usage": True}}, "gpt-4o")
    events = azure_wire.render_stream(b, generate(azure_wire.parse_request(b)), 3)
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def test_deployment_url_accepts_endpoints_with_or_without_openai_suffix() -> None:
    expected = f"{ENDPOINT}/openai/deployments/my%20dep"
    assert deployment_base_url(ENDPOINT, "my dep") == expected
    assert deployment_base_url(ENDPOINT + "/", "my dep") == expected
    assert deployment_base_url(ENDPOINT + "/openai", "my dep") == expected


def test_registry_builds_the_azure_adapter() -> None:
    assert isinstance(build_provider(model(), UpstreamPools()), AzureOpenAIProvider)


async def test_chat_goes_to_the_deployment_url_with_api_key_and_no_model() -> None:
    client = RecordingClient(answer=azure_answer({"messages": [{"role": "user", "content": "Hello Azure"}]}))
    provider = AzureOpenAIProvider(model(), ENDPOINT, FakePools(client))
    completion = await provider.complete(chat_call(model(), stream=False))
    sent = client.sent[0]
    assert sent.url == f"{ENDPOINT}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    assert "model" not in sent.body and "stream" not in sent.body
    assert ChatCompletion.model_validate(completion).choices[0].message.content == "Mock reply from gpt-4o: Hello Azure"


async def test_deployment_api_version_and_entra_token_come_from_azure_settings() -> None:
    client = RecordingClient(answer=azure_answer({"messages": [{"role": "user", "content": "Hello Azure"}]}))
    m = model(azure={"deployment": "prod-4o", "api_version": "2025-01-01-preview", "auth": "entra"})
    await AzureOpenAIProvider(m, ENDPOINT, FakePools(client)).complete(chat_call(m))
    sent = client.sent[0]
    assert sent.url == f"{ENDPOINT}/openai/deployments/prod-4o/chat/completions?api-version=2025-01-01-preview"
    assert sent.headers["authorization"] == f"Bearer {KEY}" and "api-key" not in sent.headers


async def test_embeddings_url() -> None:
    answer = {"object": "list", "data": [], "model": "emb", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    client = RecordingClient(answer=orjson.dumps(answer))
    m = model(azure={"deployment": "emb"})
    payload = {"model": "az", "input": "hi"}
    call = EmbeddingCall(m, validate_embeddings(payload), payload, KEY, TIMEOUTS, "req-2")
    assert await AzureOpenAIProvider(m, ENDPOINT, FakePools(client)).embed(call) == answer
    assert client.sent[0].url == f"{ENDPOINT}/openai/deployments/emb/embeddings?api-version=2024-10-21"
    assert client.sent[0].body == {"input": "hi"}


async def test_prompt_filter_400_keeps_status_message_and_code() -> None:
    refused = azure_wire.prompt_filtered_error().body
    client = RecordingClient(status=400, answer=orjson.dumps(refused))
    with pytest.raises(UpstreamError) as info:
        await AzureOpenAIProvider(model(), ENDPOINT, FakePools(client)).complete(chat_call(model()))
    err = info.value
    assert (err.status, err.code, err.retryable) == (400, "content_filter", False)
    assert "content management policy" in err.message


async def test_other_400s_keep_the_generic_mapping() -> None:
    client = RecordingClient(status=400, answer=orjson.dumps({"error": {"code": "BadRequest", "message": "nope"}}))
    with pytest.raises(UpstreamError) as info:
        await AzureOpenAIProvider(model(), ENDPOINT, FakePools(client)).complete(chat_call(model()))
    assert (info.value.status, info.value.code) == (400, "invalid_request")
    assert "nope" in info.value.message


async def test_stream_drops_the_prompt_filter_chunk_and_asks_for_usage() -> None:
    body = {"messages": [{"role": "user", "content": "Hello Azure"}]}
    client = RecordingClient(frames=azure_frames(body))
    provider = AzureOpenAIProvider(model(), ENDPOINT, FakePools(client))
    chunks = [c async for c in provider.stream(chat_call(model(), stream=True))]
    assert client.sent[0].body["stream_options"] == {"include_usage": True}
    assert "model" not in client.sent[0].body
    assert all(c["choices"] or c.get("usage") for c in chunks)
    assert not any("prompt_filter_results" in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == (
        "Mock reply from gpt-4o: Hello Azure"
    )
    assert chunks[-1]["usage"]["total_tokens"] > 0


async def test_output_filter_finish_reason_passes_through_the_stream() -> None:
    body = {"messages": [{"role": "user", "content": f"x {azure_wire.OUTPUT_FILTER_MARKER}"}]}
    client = RecordingClient(frames=azure_frames(body))
    provider = AzureOpenAIProvider(model(), ENDPOINT, FakePools(client))
    call = chat_call(model(), messages=body["messages"], stream=True)
    finishes = [c["choices"][0]["finish_reason"] async for c in provider.stream(call) if c["choices"]]
    assert finishes[-1] == "content_filter"
