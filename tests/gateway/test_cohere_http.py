"""Cohere over real loopback: the openai SDK -> gateway -> the Cohere v2 mock.

The mock validates bodies as Cohere does, so a request it accepts is one Cohere would. The real
`cohere` SDK client against the same mock checks the mock itself: its responses, its v2 stream
and its errors must read as Cohere's do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cohere
import openai
import orjson
import pytest

from aimm_gateway.mock import cohere_wire
from tests.gateway.conftest import RunningGateway, Upstream, base_config
from tests.gateway.openai_calls import (
    assert_unit_embeddings,
    client,
    last_request,
    rate_limited,
    stream_text,
    stream_until_error,
    user,
)
from tests.unit.test_bedrock_adapter import CLOCK_TOOL, PERSON_FORMAT, PNG_B64, WEATHER_TOOL
from tests.unit.test_cohere_adapter import assert_cohere_request

Start = Callable[[dict[str, Any]], RunningGateway]
CHAT_MODEL = "command-a-03-2025"
ALL_CAPS = ["chat", "streaming", "tools", "vision", "json", "embeddings"]


def cohere_model(name: str, upstream: Upstream, model_id: str = CHAT_MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "cohere",
        "model": model_id,
        "base_url": upstream.url,
        "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"},
        "pricing": {"input_per_1k": "0.0025", "output_per_1k": "0.01"},
        "capabilities": ALL_CAPS,
        **extra,
    }


@pytest.fixture
def upstream(upstreams: Callable[..., Upstream]) -> Upstream:
    return upstreams("cohere", stream_chunks=5)


@pytest.fixture(params=["h1", "aiohttp", "httpx"])
def gw(request: pytest.FixtureRequest, upstream: Upstream, start_gateway: Start) -> RunningGateway:
    models = [cohere_model("c", upstream), cohere_model("embed", upstream, "embed-v4.0")]
    return start_gateway(base_config(models, server={"upstream_client": request.param}, retries={"attempts": 2}))


# ---------------------------------------------------------------------------------------------
# Through the gateway


def test_plain_chat(gw: RunningGateway, upstream: Upstream) -> None:
    messages = [{"role": "system", "content": "Be brief."}, user("Say hello")]
    resp = client(gw).chat.completions.with_raw_response.create(model="c", messages=messages, temperature=0.3)
    completion = resp.parse()
    assert completion.choices[0].message.content == f"Mock reply from {CHAT_MODEL}: Say hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == CHAT_MODEL
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert resp.headers["x-aimm-provider"] == "cohere"
    sent = last_request(upstream)
    assert sent["path"] == "/v2/chat"
    assert sent["headers"]["authorization"] == "Bearer upstream-secret-key"
    assert_cohere_request(sent["body"])


def test_stream_reassembles_to_the_plain_answer(gw: RunningGateway) -> None:
    messages = [user("Tell me something about streaming responses")]
    plain = client(gw).chat.completions.create(model="c", messages=messages)
    chunks = list(
        client(gw).chat.completions.create(
            model="c",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert stream_text(chunks) == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and plain.usage is not None
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_parallel_tool_calls_round_trip_plain_and_streamed(gw: RunningGateway, upstream: Upstream) -> None:
    api = client(gw)
    tools = [WEATHER_TOOL, CLOCK_TOOL]
    messages: list[Any] = [user("Weather and time in Paris?")]
    first = api.chat.completions.create(model="c", messages=messages, tools=tools)
    message = first.choices[0].message
    calls = message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert message.content == "I will call get_weather and get_time to answer this."  # Cohere's tool plan

    streamed = list(api.chat.completions.create(model="c", messages=messages, tools=tools, stream=True))
    assert stream_text(streamed) == message.content
    deltas = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.id) for d in deltas if d.id] == [(0, calls[0].id), (1, calls[1].id)]

    messages += [
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
    ]
    second = api.chat.completions.create(model="c", messages=messages, tools=tools)
    assert second.choices[0].finish_reason == "stop"
    assert (second.choices[0].message.content or "").endswith("the get_time tool returned: noon")
    sent = last_request(upstream)["body"]
    assert_cohere_request(sent)
    assert sent["messages"][1]["tool_plan"] == message.content  # the plan goes back as Cohere's plan


def test_required_tool_choice_and_named_choice_is_a_400(gw: RunningGateway) -> None:
    api = client(gw)
    forced = api.chat.completions.create(
        model="c",
        messages=[user("Hi")],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    assert forced.choices[0].finish_reason == "tool_calls"
    with pytest.raises(openai.BadRequestError) as info:
        api.chat.completions.create(
            model="c",
            messages=[user("Hi")],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert "cannot force a named function" in str(info.value)


def test_image_parts_pass_through(gw: RunningGateway, upstream: Upstream) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    answer = client(gw).chat.completions.create(model="c", messages=[user([{"type": "text", "text": "What?"}, image])])
    assert answer.choices[0].message.content
    assert last_request(upstream)["body"]["messages"][0]["content"][1] == image


def test_json_modes_plain_and_streamed(gw: RunningGateway) -> None:
    api = client(gw)
    messages = [user("Invent a person")]
    plain = api.chat.completions.create(model="c", messages=messages, response_format=PERSON_FORMAT)
    content = plain.choices[0].message.content or ""
    assert set(orjson.loads(content)) == {"name", "age"}
    chunks = list(api.chat.completions.create(model="c", messages=messages, response_format=PERSON_FORMAT, stream=True))
    assert stream_text(chunks) == content
    loose = api.chat.completions.create(
        model="c", messages=[user("JSON please")], response_format={"type": "json_object"}
    )
    assert isinstance(orjson.loads(loose.choices[0].message.content or ""), dict)


def test_embeddings_through_the_openai_sdk(gw: RunningGateway, upstream: Upstream) -> None:
    result = client(gw).embeddings.create(model="embed", input=["hello", "world"], dimensions=512)
    assert_unit_embeddings(result, 2, 512, prompt_tokens=4)
    sent = last_request(upstream)
    assert sent["path"] == "/v2/embed" and sent["body"]["input_type"] == "search_document"


def test_rate_limit_is_429_with_retry_after(gw: RunningGateway, upstream: Upstream) -> None:
    upstream.set_faults(fail_rate=1, status_code=429, retry_after_ms=3000)
    error = rate_limited(client(gw), "c")
    assert int(error.response.headers["retry-after"]) >= 3
    assert "Trial key" in error.message


def test_mid_stream_error_ends_with_an_error_event(gw: RunningGateway, upstream: Upstream) -> None:
    upstream.set_faults(stream_error_after=3)
    received, error = stream_until_error(client(gw), "c")
    assert received and stream_text(received)
    assert "internal server error" in str(error)


def test_cut_stream_ends_with_an_error_event(gw: RunningGateway, upstream: Upstream) -> None:
    upstream.set_faults(cut_stream_after=3)
    received, error = stream_until_error(client(gw), "c")
    assert received
    assert "stream" in str(error)


def test_upstream_validation_error_passes_through(gw: RunningGateway, upstream: Upstream) -> None:
    # Six stop sequences pass the gateway's checks; Cohere takes at most five and says so.
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model="c", messages=[user("hi")], stop=list("abcdef"))
    assert "stop_sequences must have at most 5 elements" in str(info.value)
    assert upstream.stats()["by_status"] == {"400": 1}  # not retried: the caller must fix it


# ---------------------------------------------------------------------------------------------
# The mock against the real cohere SDK client


def sdk(upstream: Upstream) -> Any:
    return cohere.ClientV2(api_key="co-test", base_url=upstream.url)


def test_sdk_chat_and_chat_stream_against_the_mock(upstream: Upstream) -> None:
    co = sdk(upstream)
    tools = [
        cohere.ToolV2(
            type="function",
            function=cohere.ToolV2Function(
                name="get_weather",
                parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            ),
        )
    ]
    plain = co.chat(model=CHAT_MODEL, messages=[cohere.UserChatMessageV2(content="Hello")])
    assert plain.finish_reason == "COMPLETE"
    assert plain.message.content is not None and plain.message.content[0].type == "text"
    text = plain.message.content[0].text
    events = list(co.chat_stream(model=CHAT_MODEL, messages=[cohere.UserChatMessageV2(content="Hello")]))
    streamed = "".join(e.delta.message.content.text for e in events if e.type == "content-delta")
    assert streamed == text
    assert events[-1].type == "message-end" and events[-1].delta.usage == plain.usage
    called = co.chat(model=CHAT_MODEL, messages=[cohere.UserChatMessageV2(content="Weather?")], tools=tools)
    assert called.finish_reason == "TOOL_CALL" and called.message.tool_calls
    assert called.message.tool_calls[0].function is not None
    assert orjson.loads(called.message.tool_calls[0].function.arguments or "") == {"city": "mock-city"}


def test_sdk_errors_embed_and_models_against_the_mock(upstream: Upstream) -> None:
    co = sdk(upstream)
    with pytest.raises(cohere.BadRequestError) as info:
        co.chat(model=CHAT_MODEL, messages=[cohere.UserChatMessageV2(content="x")], temperature=3)
    assert "temperature must be between 0 and 1" in str(info.value.body)
    upstream.set_faults(fail_next=1, status_code=429)
    with pytest.raises(cohere.TooManyRequestsError):
        co.chat(model=CHAT_MODEL, messages=[cohere.UserChatMessageV2(content="x")], request_options={"max_retries": 0})
    embedded = co.embed(
        model="embed-v4.0", texts=["a", "b"], input_type="search_query", embedding_types=["float", "int8"]
    )
    assert embedded.embeddings.float_ is not None and len(embedded.embeddings.float_) == 2
    assert embedded.embeddings.int8 is not None and len(embedded.embeddings.int8[0]) == 1536
    assert [m.name for m in co.models.list().models or []] == list(cohere_wire.DEFAULT_MODELS)
