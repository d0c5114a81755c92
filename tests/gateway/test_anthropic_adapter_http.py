"""AnthropicProvider against the Anthropic mock upstream, over real HTTP on loopback.

The mock validates requests the way the real API does (headers, body, tool pairing), so a
request it accepts is one Anthropic would. Both pooled transports (aiohttp, httpx) are exercised.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from aimm_gateway.canonical import validate_chat
from aimm_gateway.config import ModelConfig, Timeouts
from aimm_gateway.errors import UpstreamError
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from aimm_gateway.providers.anthropic import AnthropicProvider
from aimm_gateway.providers.base import UpstreamCall
from aimm_gateway.providers.http import UpstreamPools
from tests.servers import run_asgi_app
from tests.unit.openai_shapes import WEATHER_TOOL, assert_openai_chunks, assert_openai_completion, reassemble
from tests.unit.test_anthropic_adapter import PERSON_FORMAT, assert_anthropic_request

API_KEY = "sk-ant-test"
TIMEOUTS = Timeouts(connect_s=2, first_byte_s=10, total_s=10, stream_idle_s=5)
CLOCK_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    # require_auth: the mock answers 401 without x-api-key, as Anthropic does.
    with run_asgi_app(create_mock_app("anthropic", FaultSettings(stream_chunks=6), require_auth=True)) as url:
        yield url


@pytest.fixture(params=["aiohttp", "httpx"])
async def pools(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamPools]:
    pools = UpstreamPools(kind=request.param)
    yield pools
    await pools.close()


@pytest.fixture
def provider(upstream_url: str, pools: UpstreamPools) -> AnthropicProvider:
    return AnthropicProvider("anthropic", upstream_url, pools)


def model(fault: str | None = None) -> ModelConfig:
    headers = {"x-mock-fault": fault} if fault else {}
    return ModelConfig(name="claude", provider="anthropic", model="claude-sonnet-4-5", headers=headers)


def call(body: dict[str, Any], fault: str | None = None) -> UpstreamCall:
    body = {"model": "claude", **body}
    return UpstreamCall(model(fault), validate_chat(body), body, API_KEY, TIMEOUTS, "req-test")


def last_request(upstream_url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{upstream_url}/_mock/stats").json()["last_request"]
    return data


async def collect(provider: AnthropicProvider, upstream_call: UpstreamCall) -> list[dict[str, Any]]:
    return [c async for c in provider.stream(upstream_call)]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def test_plain_completion(provider: AnthropicProvider, upstream_url: str) -> None:
    out = await provider.complete(
        call({"messages": [{"role": "system", "content": "Be brief."}, user("Hello there")], "max_tokens": 64})
    )
    parsed = assert_openai_completion(out)
    assert parsed.choices[0].message.content == "Mock reply from claude-sonnet-4-5: Hello there"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.model == "claude-sonnet-4-5"  # the upstream model that answered, as OpenAI reports it
    assert parsed.usage is not None and parsed.usage.prompt_tokens > 0 and parsed.usage.completion_tokens > 0

    sent = last_request(upstream_url)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == API_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["content-type"] == "application/json"
    assert "authorization" not in sent["headers"]
    assert_anthropic_request(sent["body"], stream=False)  # what actually went over the wire
    assert sent["body"]["system"] == [{"type": "text", "text": "Be brief."}]


async def test_stream_text_equals_plain(provider: AnthropicProvider) -> None:
    body = {"messages": [user("Tell me something about streaming responses")], "max_tokens": 64}
    plain = await provider.complete(call(body))
    chunks = await collect(provider, call({**body, "stream": True}))
    assert_openai_chunks(chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["model"] for c in chunks} == {"claude-sonnet-4-5"}
    assert len({c["id"] for c in chunks}) == 1
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) > 2
    streamed = reassemble(chunks)
    assert streamed["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert streamed["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and streamed["usage"] == plain["usage"]


async def test_stream_tool_calls_equal_plain(provider: AnthropicProvider, upstream_url: str) -> None:
    body = {"messages": [user("Weather and time in Paris?")], "tools": [WEATHER_TOOL, CLOCK_TOOL]}
    plain = await provider.complete(call(body))
    message = plain["choices"][0]["message"]
    assert plain["choices"][0]["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather", "get_time"]
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "mock-city"}

    chunks = await collect(provider, call({**body, "stream": True}))
    assert_openai_chunks(chunks)
    assert_anthropic_request(last_request(upstream_url)["body"], stream=True)
    streamed = reassemble(chunks)
    assert streamed["message"] == {"content": None, "tool_calls": message["tool_calls"]}
    assert streamed["finish_reason"] == "tool_calls"


async def test_tool_round_trip(provider: AnthropicProvider, upstream_url: str) -> None:
    messages: list[dict[str, Any]] = [user("Weather in Paris?")]
    first = await provider.complete(call({"messages": messages, "tools": [WEATHER_TOOL], "tool_choice": "required"}))
    calls = first["choices"][0]["message"]["tool_calls"]
    assert len(calls) == 1
    messages += [
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C and sunny"},
    ]
    second = await provider.complete(call({"messages": messages, "tools": [WEATHER_TOOL]}))
    assert_openai_completion(second)
    assert second["choices"][0]["finish_reason"] == "stop"
    assert second["choices"][0]["message"]["content"].endswith("the get_weather tool returned: 18C and sunny")
    sent = last_request(upstream_url)["body"]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": calls[0]["id"],
        "content": "18C and sunny",
    }


async def test_json_schema_answer_plain_and_streamed(provider: AnthropicProvider) -> None:
    body = {"messages": [user("Invent a person")], "response_format": PERSON_FORMAT}
    plain = await provider.complete(call(body))
    assert_openai_completion(plain)
    content = plain["choices"][0]["message"]["content"]
    assert set(orjson.loads(content)) == {"name", "age"}
    assert plain["choices"][0]["finish_reason"] == "stop"
    chunks = await collect(provider, call({**body, "stream": True}))
    assert_openai_chunks(chunks)
    streamed = reassemble(chunks)
    assert streamed["message"] == {"content": content}
    assert streamed["finish_reason"] == "stop"


async def test_upstream_429_keeps_retry_after(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError) as info:
        await provider.complete(call({"messages": [user("x")]}, fault="status=429; retry_after=2000"))
    err = info.value
    assert (err.status, err.kind, err.retryable, err.retry_after_s) == (429, "rate_limited", True, 2.0)
    assert "rate limit" in err.message


async def test_upstream_overloaded_is_retryable_503(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError) as info:
        await provider.complete(call({"messages": [user("x")]}, fault="status=529"))
    assert (info.value.status, info.value.retryable) == (503, True)


async def test_upstream_validation_error_passes_through(provider: AnthropicProvider) -> None:
    # Anthropic wants the first turn to be the user's; its own message reaches the caller.
    with pytest.raises(UpstreamError) as info:
        await provider.complete(call({"messages": [{"role": "assistant", "content": "Hi!"}, user("x")]}))
    assert info.value.status == 400 and not info.value.retryable
    assert "first message" in info.value.message


async def test_stream_http_error_raises_before_any_chunk(provider: AnthropicProvider) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as info:
        async for c in provider.stream(call({"messages": [user("x")], "stream": True}, fault="status=429")):
            received.append(c)
    assert info.value.status == 429 and received == []


async def test_stream_cut_midway_raises(provider: AnthropicProvider) -> None:
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamError) as info:
        async for c in provider.stream(
            call({"messages": [user("a long question")], "stream": True}, fault="cut_after=5")
        ):
            received.append(c)
    assert info.value.kind == "connection"
    assert received and all(c["choices"] for c in received)  # some content, but never a usage chunk


async def test_stream_error_event_raises_overloaded(provider: AnthropicProvider) -> None:
    with pytest.raises(UpstreamError) as info:
        await collect(provider, call({"messages": [user("x")], "stream": True}, fault="error_after=4"))
    assert (info.value.status, info.value.retryable) == (503, True)
    assert "Overloaded" in info.value.message
