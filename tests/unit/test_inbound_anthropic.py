"""Inbound Anthropic Messages <-> canonical translation, with the official SDKs and the mocks as oracles.

Every translated request must pass the gateway's own validation *and* the OpenAI mock's (which
validates like the real API), every translated answer must be a valid `anthropic.types.Message`
with no unknown fields, and every stream must be valid `RawMessageStreamEvent`s that the
`anthropic` SDK's own accumulator turns into the same message as the non-streaming translation.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import BaseModel, TypeAdapter

from aimm_gateway.canonical import validate_chat
from aimm_gateway.errors import GatewayError, InvalidRequest, UpstreamError
from aimm_gateway.inbound.anthropic_in import (
    AnthropicStreamWriter,
    error_body,
    error_type,
    to_anthropic_message,
    to_openai_request,
)
from aimm_gateway.mock import anthropic_wire, openai_wire
from aimm_gateway.mock.engine import generate
from tests.unit.openai_shapes import PNG_B64

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CLOCK = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
_EVENT = TypeAdapter(RawMessageStreamEvent)


def request(**fields: Any) -> dict[str, Any]:
    """An Anthropic request; the Anthropic mock checks it is one the real API would accept."""
    body = {"model": "m", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}], **fields}
    anthropic_wire.parse_request(body)
    return body


def translate(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Translate, then require both the gateway's validation and OpenAI's (via the mock) to accept it."""
    out = to_openai_request(body, **kw)
    validate_chat(out)
    openai_wire.parse_request({**out, "model": out.get("model", "m")})
    return out


def rejects(body: dict[str, Any], **kw: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        to_openai_request(body, **kw)
    assert info.value.status == 400
    return info.value


# ---------------------------------------------------------------------------------------------
# Request: Anthropic -> canonical


def test_plain_request_maps_model_max_tokens_and_user_text() -> None:
    out = translate(request())
    assert out == {"model": "m", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}


def test_system_string_becomes_the_first_message() -> None:
    out = translate(request(system="Be brief."))
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][1]["role"] == "user"


def test_system_blocks_are_joined_into_one_system_message() -> None:
    blocks = [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in French.", "cache_control": {"type": "ephemeral"}},
    ]
    out = translate(request(system=blocks))
    assert out["messages"][0] == {"role": "system", "content": "You are terse.\nAnswer in French."}


def test_base64_image_becomes_a_data_url_part() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "text", "text": "What is this?"},
    ]
    out = translate(request(messages=[{"role": "user", "content": content}]))
    assert out["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "text", "text": "What is this?"},
    ]


def test_url_image_becomes_an_image_url_part() -> None:
    content = [{"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]
    out = translate(request(messages=[{"role": "user", "content": content}]))
    assert out["messages"][0]["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]


def test_image_with_unsupported_media_type_names_the_field() -> None:
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG_B64}}]
    err = rejects({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]})
    assert err.param == "messages.0.content.0.source.media_type"
    assert "image/png" in err.message


def tool_turns(result: dict[str, Any], *user_after: dict[str, Any]) -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "days": 2}}
    return [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, call]},
        {"role": "user", "content": [result, *user_after]},
    ]


def test_tool_use_becomes_assistant_tool_calls_with_compact_json_arguments() -> None:
    out = translate(request(tools=[WEATHER], messages=tool_turns(result("sunny"))))
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "toolu_01",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":2}'},
            }
        ],
    }


def result(content: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": "toolu_01", "content": content, **extra}


def test_tool_result_string_becomes_a_tool_message() -> None:
    out = translate(request(tools=[WEATHER], messages=tool_turns(result("sunny, 21C"))))
    assert out["messages"][2:] == [{"role": "tool", "tool_call_id": "toolu_01", "content": "sunny, 21C"}]


def test_tool_result_blocks_are_joined_text() -> None:
    blocks = [{"type": "text", "text": "sunny"}, {"type": "text", "text": "21C"}]
    out = translate(request(tools=[WEATHER], messages=tool_turns(result(blocks))))
    assert out["messages"][2]["content"] == "sunny\n21C"


def test_tool_result_error_flag_is_visible_to_the_model() -> None:
    out = translate(request(tools=[WEATHER], messages=tool_turns(result("city not found", is_error=True))))
    assert out["messages"][2]["content"] == "Error: city not found"


def test_tool_results_come_before_the_user_text_of_the_same_turn() -> None:
    turns = tool_turns(result("sunny"), {"type": "text", "text": "And tomorrow?"})
    turns[2]["content"].reverse()  # the client put its text first: OpenAI still needs the tool message first
    out = translate(request(tools=[WEATHER], messages=turns))
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "user"]
    assert out["messages"][3] == {"role": "user", "content": "And tomorrow?"}


def test_tool_result_images_follow_as_user_content() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    out = translate(request(tools=[WEATHER], messages=tool_turns(result([{"type": "text", "text": "map:"}, image]))))
    tool, user = out["messages"][2], out["messages"][3]
    assert tool == {"role": "tool", "tool_call_id": "toolu_01", "content": "map:"}
    assert user["role"] == "user"
    assert user["content"][0] == {"type": "text", "text": "Images returned by tool call toolu_01:"}
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_tools_become_openai_function_tools() -> None:
    out = translate(request(tools=[WEATHER, {**CLOCK, "cache_control": {"type": "ephemeral"}}]))
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice_maps(choice: dict[str, Any], expected: Any) -> None:
    out = translate(request(tools=[WEATHER], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


def test_disable_parallel_tool_use_turns_parallel_tool_calls_off() -> None:
    out = translate(request(tools=[WEATHER, CLOCK], tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert out["parallel_tool_calls"] is False


def test_tool_choice_auto_without_tools_is_dropped_but_any_is_refused() -> None:
    assert "tool_choice" not in translate(request(tool_choice={"type": "auto"}))
    assert rejects(request() | {"tool_choice": {"type": "any"}}).param == "tool_choice"


def test_sampling_stop_and_user_fields() -> None:
    out = translate(
        request(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            stop_sequences=["END", "STOP"],
            metadata={"user_id": "user-42"},
            stream=True,
        )
    )
    assert out["temperature"] == 0.5 and out["top_p"] == 0.9
    assert out["stop"] == ["END", "STOP"]
    assert out["user"] == "user-42"
    assert out["stream"] is True
    assert "top_k" not in out  # sampling detail with no OpenAI equivalent: dropped


def test_temperature_keeps_anthropics_range() -> None:
    err = rejects(request() | {"temperature": 1.5})
    assert err.param == "temperature"


def test_max_tokens_is_required() -> None:
    body = request()
    del body["max_tokens"]
    err = rejects(body)
    assert err.message == "max_tokens: Field required"
    assert err.param == "max_tokens"


def test_count_tokens_needs_no_max_tokens() -> None:
    out = to_openai_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, for_count=True)
    assert "max_tokens" not in out
    validate_chat(out)


def test_thinking_is_refused_unless_disabled() -> None:
    err = rejects(request(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048}))
    assert err.param == "thinking"
    assert "thinking" not in translate(request(thinking={"type": "disabled"}))


def test_unknown_and_unsupported_fields_are_refused() -> None:
    assert rejects(request() | {"frobnicate": 1}).message == "frobnicate: Extra inputs are not permitted"
    assert rejects(request() | {"container": "c1"}).param == "container"


def test_hosted_tools_are_refused() -> None:
    err = rejects(request() | {"tools": [{"type": "web_search_20250305", "name": "web_search"}]})
    assert err.param == "tools.0.type"


def test_document_blocks_are_refused_with_their_path() -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}}
    err = rejects(request(messages=[{"role": "user", "content": [doc, {"type": "text", "text": "sum up"}]}]))
    assert err.param == "messages.0.content.0.type"


def test_assistant_thinking_blocks_from_history_are_dropped() -> None:
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hello!"},
            ],
        },
        {"role": "user", "content": "and?"},
    ]
    out = translate(request(messages=history))
    assert out["messages"][1] == {"role": "assistant", "content": "Hello!"}


def test_structured_output_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    out = translate(request(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


# ---------------------------------------------------------------------------------------------
# Response: canonical -> Anthropic


def assert_message(data: dict[str, Any]) -> Message:
    msg = Message.model_validate(data)
    _no_extras(msg, "message")
    return msg


def _no_extras(model: BaseModel, path: str) -> None:
    assert not model.model_extra, f"{path}: fields unknown to the anthropic SDK: {sorted(model.model_extra or {})}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        for k, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, BaseModel):
                _no_extras(item, f"{path}.{name}[{k}]")


def completion_for(body: dict[str, Any]) -> dict[str, Any]:
    """A real canonical completion: the OpenAI mock's answer to the translated request."""
    openai_body = {**body, "model": "gpt-4o"}
    return openai_wire.render_completion(openai_body, generate(openai_wire.parse_request(openai_body)))


def test_text_answer_becomes_a_message() -> None:
    completion = completion_for(translate(request()))
    msg = assert_message(to_anthropic_message(completion, model="fallback"))
    assert msg.id == "msg_" + completion["id"].removeprefix("chatcmpl-")
    assert msg.model == "gpt-4o"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == completion["choices"][0]["message"]["content"]  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.input_tokens == completion["usage"]["prompt_tokens"]
    assert msg.usage.output_tokens == completion["usage"]["completion_tokens"]


def test_tool_calls_become_tool_use_blocks_with_parsed_input() -> None:
    completion = completion_for(translate(request(tools=[WEATHER, CLOCK], tool_choice={"type": "any"})))
    msg = assert_message(to_anthropic_message(completion, model="m"))
    calls = completion["choices"][0]["message"]["tool_calls"]
    assert [(b.type, b.id, b.name) for b in msg.content] == [  # type: ignore[union-attr]
        ("tool_use", c["id"], c["function"]["name"]) for c in calls
    ]
    assert msg.content[0].input == orjson.loads(calls[0]["function"]["arguments"])  # type: ignore[union-attr]
    assert msg.stop_reason == "tool_use"


def canonical(content: Any = "hi", finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish, **choice}
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 5,
            "total_tokens": 35,
            "prompt_tokens_details": {"cached_tokens": 12},
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons_map_to_stop_reasons(finish: str, stop_reason: str) -> None:
    msg = assert_message(to_anthropic_message(canonical(finish=finish), model="m"))
    assert msg.stop_reason == stop_reason


def test_tool_calls_ending_with_stop_are_still_tool_use() -> None:
    answer = canonical(content=None)
    answer["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    ]
    assert to_anthropic_message(answer, model="m")["stop_reason"] == "tool_use"
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "stop"}]}]
    assert run_stream(chunks)[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_stop_sequence_is_reported_only_when_the_upstream_names_it() -> None:
    named = to_anthropic_message(canonical(stop_reason="END"), model="m", stop_sequences=["END"])
    assert (named["stop_reason"], named["stop_sequence"]) == ("stop_sequence", "END")
    unnamed = to_anthropic_message(canonical(), model="m", stop_sequences=["END"])
    assert (unnamed["stop_reason"], unnamed["stop_sequence"]) == ("end_turn", None)


def test_cached_prompt_tokens_are_reported_apart() -> None:
    usage = to_anthropic_message(canonical(), model="m")["usage"]
    assert usage == {
        "input_tokens": 18,
        "output_tokens": 5,
        "cache_read_input_tokens": 12,
        "cache_creation_input_tokens": 0,
    }


def test_empty_answer_and_refusal() -> None:
    assert to_anthropic_message(canonical(content=None, finish="content_filter"), model="m")["content"] == []
    refused = canonical(content=None, refusal="I can't help with that.")
    refused["choices"][0]["message"]["refusal"] = "I can't help with that."
    assert to_anthropic_message(refused, model="m")["content"] == [{"type": "text", "text": "I can't help with that."}]


def test_tool_arguments_that_are_not_an_object_are_an_upstream_error() -> None:
    bad = canonical(content=None, finish="tool_calls")
    bad["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    ]
    with pytest.raises(UpstreamError) as info:
        to_anthropic_message(bad, model="m")
    assert info.value.status == 502


# ---------------------------------------------------------------------------------------------
# Stream: canonical chunks -> Anthropic events


def stream_for(body: dict[str, Any], pieces: int = 5) -> list[dict[str, Any]]:
    """A real canonical chunk stream (the OpenAI mock's, with usage) for the translated request."""
    openai_body = {**body, "model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}}
    return list(openai_wire.render_stream(openai_body, generate(openai_wire.parse_request(openai_body)), pieces))


def run_stream(chunks: list[dict[str, Any]], **kw: Any) -> list[tuple[str, dict[str, Any]]]:
    writer = AnthropicStreamWriter("fallback", **kw)
    events = [e for c in chunks for e in writer.feed(c)] + writer.finish()
    for name, data in events:
        assert name == data["type"]
        if name != "ping":  # a keep-alive the SDK skips; not a RawMessageStreamEvent
            _EVENT.validate_python(data)
    return events


def accumulate(events: list[tuple[str, dict[str, Any]]]) -> Message:
    """The anthropic SDK's own stream accumulator: what `get_final_message()` returns."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for _, data in events:
        if data["type"] != "ping":
            snapshot = accumulate_event(
                event=_EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=buffers
            )
    assert snapshot is not None
    return snapshot


def test_text_stream_event_sequence() -> None:
    body = translate(request())
    events = run_stream(stream_for(body), input_tokens=7)
    names = [n for n, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert events[0][1]["message"]["usage"]["input_tokens"] == 7  # the estimate, before the upstream's count
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_stream_accumulates_to_the_non_streaming_message() -> None:
    body = translate(request(system="Be brief."))
    streamed = accumulate(run_stream(stream_for(body)))
    plain = assert_message(to_anthropic_message(completion_for(body), model="m"))
    assert [(b.type, b.text) for b in streamed.content] == [(b.type, b.text) for b in plain.content]  # type: ignore[union-attr]
    assert streamed.stop_reason == plain.stop_reason
    assert streamed.usage.output_tokens == plain.usage.output_tokens
    assert streamed.usage.input_tokens == plain.usage.input_tokens  # message_delta corrects the estimate


def test_tool_call_stream_opens_one_block_per_call_with_json_deltas() -> None:
    body = translate(request(tools=[WEATHER, CLOCK], tool_choice={"type": "any"}))
    events = run_stream(stream_for(body))
    starts = [d for n, d in events if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "tool_use"), (1, "tool_use")]
    deltas = [d for n, d in events if n == "content_block_delta"]
    assert {d["delta"]["type"] for d in deltas} == {"input_json_delta"}
    streamed = accumulate(events)
    plain = to_anthropic_message(completion_for(body), model="m")
    assert [(b.name, b.input) for b in streamed.content] == [  # type: ignore[union-attr]
        (b["name"], b["input"]) for b in plain["content"]
    ]
    assert streamed.stop_reason == "tool_use"


def test_text_then_tool_call_closes_the_text_block_first() -> None:
    chunks = [
        {"id": "chatcmpl-1", "model": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let"}}]},
        {"id": "chatcmpl-1", "model": "x", "choices": [{"index": 0, "delta": {"content": " me see."}}]},
        {
            "id": "chatcmpl-1",
            "model": "x",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "get_time", "arguments": ""},
                            }
                        ]
                    },
                }
            ],
        },
        {
            "id": "chatcmpl-1",
            "model": "x",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
    ]
    events = run_stream(chunks)
    kinds = [(n, d.get("index")) for n, d in events if n.startswith("content_block_") and n != "content_block_delta"]
    assert kinds == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
    ]
    final = accumulate(events)
    assert final.content[0].text == "Let me see."  # type: ignore[union-attr]
    assert (final.content[1].id, final.content[1].input) == ("call_9", {})  # type: ignore[union-attr]


def test_stream_usage_and_stop_sequence_reach_message_delta() -> None:
    chunks: list[dict[str, Any]] = [
        {"id": "chatcmpl-2", "model": "x", "choices": [{"index": 0, "delta": {"content": "ab"}}]},
        {
            "id": "chatcmpl-2",
            "model": "x",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "##"}],
        },
        {"id": "chatcmpl-2", "model": "x", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
    ]
    delta = run_stream(chunks, stop_sequences=["##"])[-2][1]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "##"}
    assert delta["usage"]["input_tokens"] == 9 and delta["usage"]["output_tokens"] == 2


def test_stream_error_event_shape() -> None:
    name, data = AnthropicStreamWriter.error(UpstreamError("upstream broke", kind="connection"))
    assert name == "error"
    assert data == {"type": "error", "error": {"type": "api_error", "message": "upstream broke"}}


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ],
)
def test_error_types_follow_the_status(status: int, kind: str) -> None:
    assert error_type(status) == kind
    body = error_body(GatewayError("boom", status=status), "req_1")
    assert body == {"type": "error", "error": {"type": kind, "message": "boom"}, "request_id": "req_1"}
