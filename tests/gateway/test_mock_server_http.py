"""The mock providers over real HTTP, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message, ToolUseBlock
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import DEFAULT_MODELS, create_mock_app
from tests.servers import run_asgi_app

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": HELLO}  # raw request body
MESSAGE: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hello"}],
}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "x"}
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER_FN: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": CITY_SCHEMA},
}
WEATHER_TOOL = {"name": "get_weather", "input_schema": CITY_SCHEMA}


@pytest.fixture(scope="module")
def openai_url() -> Iterator[str]:
    with run_asgi_app(create_mock_app("openai", FaultSettings())) as url:
        yield url


@pytest.fixture(scope="module")
def anthropic_url() -> Iterator[str]:
    with run_asgi_app(create_mock_app("anthropic", FaultSettings(stream_chunks=4))) as url:
        yield url


def oa(url: str, max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=max_retries)


def an(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)


def hello(client: openai.OpenAI) -> ChatCompletion:
    return client.chat.completions.create(model="gpt-4o", messages=HELLO)


def stats(url: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{url}/_mock/stats").json()
    return data


def sse_lines(response: httpx.Response) -> list[str]:
    return [line for line in response.text.split("\n") if line]


def post_chat(url: str, body: dict[str, Any] = CHAT, fault: str | None = None) -> httpx.Response:
    headers = {"x-mock-fault": fault} if fault is not None else {}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers)


def tool_use_of(message: Message) -> ToolUseBlock:
    [block] = message.content
    assert isinstance(block, ToolUseBlock)
    return block


# ---------------------------------------------------------------------------------------------
# OpenAI format via the openai SDK


def test_openai_chat_plain(openai_url: str) -> None:
    raw = oa(openai_url).chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    completion = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Mock reply from gpt-4o: Hello"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_openai_stream_with_usage(openai_url: str) -> None:
    client = oa(openai_url)
    plain = hello(client)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) == 1 + 8 + 1 + 1  # role, 8 content pieces (default stream_chunks), finish, usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_is_framed_as_sse_with_done(openai_url: str) -> None:
    response = post_chat(openai_url, {**CHAT, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = sse_lines(response)
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert response.text.endswith("\n\n")


def test_openai_tools_round_trip(openai_url: str) -> None:
    client = oa(openai_url)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_FN])
    assert first.choices[0].finish_reason == "tool_calls"
    [call] = first.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"mock-city"}'
    answered: list[ChatCompletionMessageParam] = [
        *messages,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="gpt-4o", messages=answered, tools=[WEATHER_FN])
    assert second.choices[0].message.content == "Mock reply from gpt-4o: the get_weather tool returned: sunny"
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_FN], stream=True)
    arguments = "".join(
        tc.function.arguments or "" for chunk in stream for tc in chunk.choices[0].delta.tool_calls or [] if tc.function
    )
    assert arguments == call.function.arguments


def test_openai_embeddings_default_base64_and_float(openai_url: str) -> None:
    client = oa(openai_url)
    packed = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert stats(openai_url)["last_request"]["body"]["encoding_format"] == "base64"  # the SDK's default
    floats = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float")
    assert [len(d.embedding) for d in packed.data] == [1536, 1536]
    for a, b in zip(packed.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
        assert math.isclose(math.hypot(*a.embedding), 1.0, rel_tol=1e-5)
    small = client.embeddings.create(model="text-embedding-3-large", input="x", dimensions=256)
    assert len(small.data[0].embedding) == 256
    assert small.usage.prompt_tokens == 1


def test_openai_models_list(openai_url: str) -> None:
    ids = [m.id for m in oa(openai_url).models.list()]
    assert ids == list(DEFAULT_MODELS["openai"])


def test_openai_validation_errors_reach_the_sdk(openai_url: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oa(openai_url).chat.completions.create(model="gpt-4o", messages=HELLO, temperature=3)
    assert info.value.status_code == 400
    assert (info.value.code, info.value.param, info.value.type) == (
        "decimal_above_max_value",
        "temperature",
        "invalid_request_error",
    )
    bad_json = httpx.post(
        f"{openai_url}/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert "could not parse the JSON body" in bad_json.json()["error"]["message"]


def test_openai_require_auth() -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(), require_auth=True)) as url:
        denied = post_chat(url)
        assert denied.status_code == 401
        assert denied.json()["error"]["type"] == "invalid_request_error"
        assert hello(oa(url)).choices[0].message.content


# ---------------------------------------------------------------------------------------------
# Anthropic format via the anthropic SDK


def test_anthropic_messages_plain(anthropic_url: str) -> None:
    message = an(anthropic_url).messages.create(**MESSAGE)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Mock reply from claude-sonnet-4-6: Hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_anthropic_stream_final_message_matches_plain(anthropic_url: str) -> None:
    client = an(anthropic_url)
    plain = client.messages.create(**MESSAGE)
    with client.messages.stream(**MESSAGE) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert plain.content[0].type == "text"
    assert text == plain.content[0].text
    assert [b.model_dump(include={"type", "text"}) for b in final.content] == [
        b.model_dump(include={"type", "text"}) for b in plain.content
    ]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == (
        "end_turn",
        plain.usage.input_tokens,
        plain.usage.output_tokens,
    )


def test_anthropic_stream_sse_framing(anthropic_url: str) -> None:
    response = httpx.post(f"{anthropic_url}/v1/messages", json={**MESSAGE, "stream": True}, headers=ANTHROPIC_HEADERS)
    lines = sse_lines(response)
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    assert all(line.startswith("event: ") for line in lines[0::2])
    assert all(line.startswith("data: {") for line in lines[1::2])
    for name, data in zip(names, lines[1::2], strict=True):
        assert f'"type":"{name}"' in data  # each event's name is its data's type
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") == 4  # stream_chunks=4 on this app


def test_anthropic_tool_use(anthropic_url: str) -> None:
    client = an(anthropic_url)
    kwargs: dict[str, Any] = {**MESSAGE, "tools": [WEATHER_TOOL]}
    message = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        streamed = stream.get_final_message()
    for result in (message, streamed):
        assert result.stop_reason == "tool_use"
        block = tool_use_of(result)
        assert (block.name, block.input) == ("get_weather", {"city": "mock-city"})
        assert block.id.startswith("toolu_")


def test_anthropic_count_tokens(anthropic_url: str) -> None:
    client = an(anthropic_url)
    counted = client.messages.count_tokens(model="claude-sonnet-4-6", messages=MESSAGE["messages"])
    assert counted.input_tokens == client.messages.create(**MESSAGE).usage.input_tokens


def test_anthropic_models_list(anthropic_url: str) -> None:
    assert [m.id for m in an(anthropic_url).models.list()] == list(DEFAULT_MODELS["anthropic"])


def test_anthropic_missing_max_tokens_is_400(anthropic_url: str) -> None:
    body = {k: v for k, v in MESSAGE.items() if k != "max_tokens"}
    response = httpx.post(f"{anthropic_url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert payload["request_id"] == response.headers["request-id"]


def test_anthropic_header_checks() -> None:
    with run_asgi_app(create_mock_app("anthropic", FaultSettings(), require_auth=True)) as url:
        no_key = httpx.post(f"{url}/v1/messages", json=MESSAGE, headers={"anthropic-version": "2023-06-01"})
        assert no_key.status_code == 401
        assert no_key.json()["error"]["type"] == "authentication_error"
        no_version = httpx.post(f"{url}/v1/messages", json=MESSAGE, headers={"x-api-key": "k"})
        assert no_version.status_code == 400
        assert no_version.json()["error"]["message"] == "anthropic-version: header is required"
        assert an(url).messages.create(**MESSAGE).content


# ---------------------------------------------------------------------------------------------
# Faults


def test_rate_limited_openai_sends_retry_after() -> None:
    app = create_mock_app("openai", FaultSettings(fail_rate=1, status_code=429, retry_after_ms=2000))
    with run_asgi_app(app) as url:
        with pytest.raises(openai.RateLimitError) as info:
            hello(oa(url))
        headers = info.value.response.headers
        assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "2000")
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert info.value.code == "rate_limit_exceeded"
        assert stats(url)["by_status"] == {"429": 1}


def test_rate_limited_anthropic_sends_retry_after() -> None:
    with run_asgi_app(create_mock_app("anthropic", FaultSettings(fail_rate=1, status_code=429))) as url:
        with pytest.raises(anthropic.RateLimitError) as info:
            an(url).messages.create(**MESSAGE)
        assert info.value.response.headers["retry-after"] == "1"
        body: Any = info.value.body
        assert body["error"]["type"] == "rate_limit_error"
        assert body["request_id"] == info.value.response.headers["request-id"]


def test_anthropic_overloaded_529() -> None:
    with run_asgi_app(create_mock_app("anthropic", FaultSettings(fail_rate=1, status_code=529))) as url:
        with pytest.raises(anthropic.OverloadedError) as info:
            an(url).messages.create(**MESSAGE)
        assert info.value.status_code == 529


def test_fail_next_counts_attempts_and_sdk_retries_succeed() -> None:
    app = create_mock_app("openai", FaultSettings(fail_next=2, status_code=503, retry_after_ms=10))
    with run_asgi_app(app) as url:
        completion = hello(oa(url, max_retries=2))
        assert completion.choices[0].message.content
        seen = stats(url)
        assert seen["by_path"] == {"/v1/chat/completions": 3}
        assert seen["by_status"] == {"503": 2, "200": 1}


def test_cut_stream_after_ends_without_terminal_event() -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(cut_stream_after=3))) as url:
        received: list[str] = []
        with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117 - the error is raised while reading
            with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}) as response:
                assert response.status_code == 200
                received.extend(line for line in response.iter_lines() if line)
        assert len(received) == 3
        assert "data: [DONE]" not in received
    with run_asgi_app(create_mock_app("anthropic", FaultSettings())) as url:
        events: list[str] = []
        headers = {**ANTHROPIC_HEADERS, "x-mock-fault": "cut_after=4"}
        with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
            with httpx.stream("POST", f"{url}/v1/messages", json={**MESSAGE, "stream": True}, headers=headers) as r:
                events.extend(line for line in r.iter_lines() if line.startswith("event: "))
        assert events == [
            "event: message_start",
            "event: content_block_start",
            "event: ping",
            "event: content_block_delta",
        ]


def test_stream_error_event_surfaces_in_the_sdks() -> None:
    faults = FaultSettings(stream_error_after=2)
    with (
        run_asgi_app(create_mock_app("openai", faults)) as url,
        pytest.raises(openai.APIError, match="had an error"),
    ):
        list(oa(url).chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    with run_asgi_app(create_mock_app("anthropic", faults)) as url:
        with pytest.raises(anthropic.APIStatusError) as info, an(url).messages.stream(**MESSAGE) as stream:
            stream.get_final_message()
        body: Any = info.value.body
        assert body["error"]["type"] == "overloaded_error"


def test_latency_first_byte_delay_and_chunk_interval() -> None:
    faults = FaultSettings(latency_ms=150, first_byte_delay_ms=100, chunk_interval_ms=20, stream_chunks=4)
    with run_asgi_app(create_mock_app("openai", faults)) as url, httpx.Client() as client:
        start = time.perf_counter()
        client.post(f"{url}/v1/chat/completions", json=CHAT).raise_for_status()
        assert time.perf_counter() - start >= 0.15
        start = time.perf_counter()
        with client.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            headers_at = time.perf_counter() - start
            lines = response.iter_lines()
            next(lines)
            first_event_at = time.perf_counter() - start
            count = 1 + sum(1 for line in lines if line)
        total = time.perf_counter() - start
        assert 0.15 <= headers_at < first_event_at
        assert first_event_at >= 0.25
        assert count == 1 + 4 + 1 + 1  # role, content, finish, [DONE]
        assert total >= 0.25 + (count - 1) * 0.02


def test_reset_connection_drops_without_response() -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(reset_connection=1))) as url:
        # FIN without a response, or RST when request bytes were still unread: both are resets
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            post_chat(url)
        seen = stats(url)
        assert (seen["total"], seen["dropped"], seen["by_status"]) == (1, 1, {})


def test_per_request_fault_header(openai_url: str) -> None:
    failed = post_chat(openai_url, fault="status=503")
    assert failed.status_code == 503
    assert failed.json()["error"]["type"] == "server_error"
    assert failed.headers["retry-after"] == "1"
    as_json = post_chat(openai_url, fault='{"status_code": 500}')
    assert as_json.status_code == 500
    assert post_chat(openai_url).status_code == 200
    chunked = post_chat(openai_url, {**CHAT, "stream": True}, fault="chunks=2")
    assert len(sse_lines(chunked)) == 1 + 2 + 1 + 1
    bad = post_chat(openai_url, fault="status")
    assert bad.status_code == 400
    assert "invalid x-mock-fault header" in bad.json()["error"]["message"]


def test_runtime_fault_updates_stats_and_reset() -> None:
    with run_asgi_app(create_mock_app("anthropic", FaultSettings())) as url:
        assert an(url).messages.create(**MESSAGE).content
        updated = httpx.post(f"{url}/_mock/faults", json={"fail_rate": 1, "status_code": 500})
        assert updated.status_code == 200 and updated.json()["fail_rate"] == 1
        assert httpx.get(f"{url}/_mock/faults").json()["status_code"] == 500
        with pytest.raises(anthropic.InternalServerError):
            an(url).messages.create(**MESSAGE)
        with pytest.raises(anthropic.InternalServerError):
            an(url).models.list()
        with pytest.raises(anthropic.InternalServerError):
            an(url).messages.count_tokens(model="m", messages=MESSAGE["messages"])
        seen = stats(url)
        assert seen["total"] == 4
        assert seen["by_path"] == {"/v1/messages": 2, "/v1/models": 1, "/v1/messages/count_tokens": 1}
        assert seen["by_status"] == {"200": 1, "500": 3}
        assert httpx.post(f"{url}/_mock/faults", json={"fail_rate": 2}).status_code == 422
        assert httpx.post(f"{url}/_mock/faults", json={"no_such_fault": 1}).status_code == 422
        assert httpx.post(f"{url}/_mock/reset").status_code == 200
        assert stats(url)["total"] == 0
        assert an(url).messages.create(**MESSAGE).content
        assert httpx.get(f"{url}/health").json() == {"status": "ok", "format": "anthropic"}


def test_seeded_rng_makes_random_failures_reproducible() -> None:
    def statuses(seed: int) -> list[int]:
        app = create_mock_app("openai", FaultSettings(fail_rate=0.5), rng=random.Random(seed))
        with run_asgi_app(app) as url, httpx.Client() as client:
            return [client.post(f"{url}/v1/chat/completions", json=CHAT).status_code for _ in range(16)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 500}
