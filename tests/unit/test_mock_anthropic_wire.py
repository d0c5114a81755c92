"""Anthropic Messages wire format of the mock: validated against the official anthropic SDK types."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from aimm_gateway.mock import anthropic_wire as wire
from aimm_gateway.mock.engine import MockValidationError, generate

EVENT = TypeAdapter(RawMessageStreamEvent)
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def msgs(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi"}],
        **extra,
    }


def create(body: dict[str, Any]) -> Message:
    return Message.model_validate(wire.render_message(body, generate(wire.parse_request(body))))


def events_of(body: dict[str, Any], chunks: int = 3) -> list[dict[str, Any]]:
    out = generate(wire.parse_request(body))
    events = list(wire.render_stream(body, out, chunks))
    for event in events:
        if event["type"] != "ping":  # ping is not part of RawMessageStreamEvent; the SDK skips it
            EVENT.validate_python(event)
    return events


def rejects(body: Any) -> str:
    with pytest.raises(MockValidationError) as info:
        wire.parse_request(body)
    assert info.value.status == 400
    payload = info.value.body
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["request_id"].startswith("req_")
    message: str = payload["error"]["message"]
    return message


# ---------------------------------------------------------------------------------------------
# Non-streaming


def test_message_has_anthropics_exact_shape() -> None:
    body = msgs(system="be kind")
    raw = wire.render_message(body, generate(wire.parse_request(body)))
    assert raw["id"].startswith("msg_")
    assert (raw["type"], raw["role"], raw["model"]) == ("message", "assistant", "claude-sonnet-4-6")
    assert raw["content"] == [{"type": "text", "text": "Mock reply from claude-sonnet-4-6: Hi"}]
    assert (raw["stop_reason"], raw["stop_sequence"]) == ("end_turn", None)
    usage = raw["usage"]
    assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0
    assert usage["service_tier"] == "standard"
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert Message.model_validate(raw).usage.input_tokens == usage["input_tokens"]


def test_tool_use_message() -> None:
    message = create(msgs(tools=[WEATHER]))
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert (block.name, block.input) == ("get_weather", {"city": "mock-city", "unit": "c"})


def test_tool_choice_mapping() -> None:
    both = create(msgs(tools=[WEATHER, TIME]))
    assert [b.name for b in both.content if b.type == "tool_use"] == ["get_weather", "get_time"]
    serial = create(msgs(tools=[WEATHER, TIME], tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert [b.name for b in serial.content if b.type == "tool_use"] == ["get_weather"]
    named = create(msgs(tools=[WEATHER, TIME], tool_choice={"type": "tool", "name": "get_time"}))
    assert [b.name for b in named.content if b.type == "tool_use"] == ["get_time"]
    none = create(msgs(tools=[WEATHER], tool_choice={"type": "none"}))
    assert none.stop_reason == "end_turn"


def test_tool_result_round_trip() -> None:
    body = msgs(tools=[WEATHER])
    tool_use = create(body).content[0]
    assert tool_use.type == "tool_use"
    body["messages"] += [
        {"role": "assistant", "content": [tool_use.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use.id,
                    "content": [{"type": "text", "text": "sunny"}],
                }
            ],
        },
    ]
    answer = create(body)
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "Mock reply from claude-sonnet-4-6: the get_weather tool returned: sunny"


def test_stop_reasons() -> None:
    assert create(msgs(max_tokens=2)).stop_reason == "max_tokens"
    stopped = create(msgs(stop_sequences=["from"]))
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "from")
    assert stopped.content[0].type == "text" and stopped.content[0].text == "Mock reply "
    refused = create(msgs(messages=[{"role": "user", "content": "x [[content_filter]]"}]))
    assert (refused.stop_reason, refused.content) == ("refusal", [])


def test_content_blocks_system_blocks_and_images() -> None:
    body = msgs(
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look at"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
                    },
                ],
            },
            {"role": "assistant", "content": "Sure,"},  # prefill: final assistant turn
        ],
    )
    text = create(body).content[0]
    assert text.type == "text"
    assert text.text == "Mock reply from claude-sonnet-4-6: Look at [image] [image] [document]"


def test_structured_output_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    message = create(msgs(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert message.content[0].type == "text"
    assert json.loads(message.content[0].text) == {"n": 1}


# ---------------------------------------------------------------------------------------------
# Streaming


def test_text_stream_event_sequence() -> None:
    body = msgs(stream=True)
    events = events_of(body, chunks=3)
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    final = create(msgs())
    start = events[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == final.usage.input_tokens
    assert start["usage"]["output_tokens"] == 1
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert final.content[0].type == "text" and text == final.content[0].text
    delta = events[-2]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"] == {"output_tokens": final.usage.output_tokens}


def test_tool_use_stream_sends_partial_json() -> None:
    events = events_of(msgs(stream=True, tools=[WEATHER, TIME]), chunks=4)
    starts = [e for e in events if e["type"] == "content_block_start"]
    assert [(s["index"], s["content_block"]["name"], s["content_block"]["input"]) for s in starts] == [
        (0, "get_weather", {}),
        (1, "get_time", {}),
    ]
    partial: dict[int, str] = {0: "", 1: ""}
    for event in events:
        if event["type"] == "content_block_delta":
            assert event["delta"]["type"] == "input_json_delta"
            partial[event["index"]] += event["delta"]["partial_json"]
    assert json.loads(partial[0]) == {"city": "mock-city", "unit": "c"}
    assert json.loads(partial[1]) == {}
    assert [e["type"] for e in events].count("ping") == 1
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_stream_error_event_shape() -> None:
    event = wire.stream_error_event()
    assert event == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


# ---------------------------------------------------------------------------------------------
# Validation

USER = {"role": "user", "content": "hi"}
TOOL_USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}


def _body(**changes: Any) -> dict[str, Any]:
    body = msgs()
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


INVALID_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no max_tokens", _body(max_tokens=...), "max_tokens: Field required"),
    ("no model", _body(model=...), "model: Field required"),
    ("no messages", _body(messages=...), "messages: Field required"),
    ("empty messages", _body(messages=[]), "messages: at least one message is required"),
    (
        "system role",
        _body(messages=[{"role": "system", "content": "x"}, USER]),
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        "assistant first",
        _body(messages=[{"role": "assistant", "content": "x"}, USER]),
        'messages: first message must use the "user" role',
    ),
    ("max_tokens zero", _body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    ("max_tokens str", _body(max_tokens="10"), "max_tokens: Input should be a valid integer"),
    ("temperature above 1", _body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
    ("top_p negative", _body(top_p=-0.1), "top_p: Input should be greater than or equal to 0"),
    ("unknown field", _body(n=2), "n: Extra inputs are not permitted"),
    (
        "empty text block",
        _body(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        "messages: text content blocks must be non-empty",
    ),
    (
        "empty user content",
        _body(messages=[{"role": "user", "content": ""}]),
        "messages.0: all messages must have non-empty content",
    ),
    (
        "unknown block",
        _body(messages=[{"role": "user", "content": [{"type": "video"}]}]),
        "messages.0.content.0: Input tag 'video' found using 'type'",
    ),
    (
        "bad image type",
        _body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "AA"},
                        }
                    ],
                }
            ]
        ),
        "messages.0.content.0.image.source.base64.media_type",
    ),
    (
        "tool_use unanswered",
        _body(messages=[USER, TOOL_USE, USER]),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "stray tool_result",
        _body(
            messages=[
                USER,
                {"role": "assistant", "content": "ok"},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "r"}],
                },
            ]
        ),
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
    ),
    (
        "tool_use bad input",
        _body(
            messages=[
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                },
            ]
        ),
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
    ),
    ("system not text", _body(system=[{"type": "image"}]), "system.0.type: Input should be 'text'"),
    ("tool without schema", _body(tools=[{"name": "f"}]), "tools.0.custom.input_schema: Field required"),
    (
        "tool bad name",
        _body(tools=[{"name": "a b", "input_schema": {}}]),
        "tools.0.custom.name: String should match",
    ),
    (
        "tool_choice bad type",
        _body(tools=[WEATHER], tool_choice={"type": "required"}),
        "tool_choice: Input tag 'required' found",
    ),
    (
        "tool_choice tool without name",
        _body(tools=[WEATHER], tool_choice={"type": "tool"}),
        "tool_choice.tool.name: Field required",
    ),
    (
        "thinking budget >= max_tokens",
        _body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000}),
        "`max_tokens` must be greater than `thinking.budget_tokens`",
    ),
    (
        "thinking budget too small",
        _body(thinking={"type": "enabled", "budget_tokens": 100}),
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
    ("stop_sequences not list", _body(stop_sequences="END"), "stop_sequences: Input should be a valid list"),
]


@pytest.mark.parametrize(("body", "fragment"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES])
def test_invalid_requests_are_rejected_like_anthropic(body: dict[str, Any], fragment: str) -> None:
    assert fragment in rejects(copy.deepcopy(body))


def test_server_tools_and_thinking_are_accepted() -> None:
    body = msgs(
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"type": "web_search_20250305", "name": "web_search"}, WEATHER],
        metadata={"user_id": "u1"},
        top_k=5,
    )
    assert [t.name for t in wire.parse_request(body).tools] == ["get_weather"]


def test_check_headers() -> None:
    wire.check_headers({"anthropic-version": "2023-06-01"}, require_auth=False)
    wire.check_headers({"anthropic-version": "2023-06-01", "x-api-key": "k"}, require_auth=True)
    wire.check_headers({"anthropic-version": "2023-06-01", "authorization": "Bearer k"}, require_auth=True)
    with pytest.raises(MockValidationError) as missing_version:
        wire.check_headers({"x-api-key": "k"}, require_auth=True)
    assert missing_version.value.status == 400
    assert missing_version.value.body["error"]["message"] == "anthropic-version: header is required"
    with pytest.raises(MockValidationError) as missing_key:
        wire.check_headers({"anthropic-version": "2023-06-01", "authorization": "Bearer "}, require_auth=True)
    assert missing_key.value.status == 401
    assert missing_key.value.body["error"]["type"] == "authentication_error"


def test_count_tokens_matches_message_usage() -> None:
    body = msgs(system="sys", tools=[WEATHER], tool_choice={"type": "none"})
    counted = wire.render_count_tokens(
        wire.parse_count_tokens_request({k: v for k, v in body.items() if k != "max_tokens"})
    )
    assert counted == {"input_tokens": create(body).usage.input_tokens}
    with pytest.raises(MockValidationError) as info:
        wire.parse_count_tokens_request(body)
    assert info.value.body["error"]["message"] == "max_tokens: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (401, "authentication_error"),
        (502, "api_error"),
        (418, "invalid_request_error"),
    ],
)
def test_fault_error_bodies(status: int, error_type: str) -> None:
    body = wire.fault_error_body(status, "req_x")
    assert body == {
        "type": "error",
        "error": {"type": error_type, "message": body["error"]["message"]},
        "request_id": "req_x",
    }
    assert body["error"]["message"]


def test_models_listing() -> None:
    listing = wire.render_models(["claude-a", "claude-b"])
    assert (listing["first_id"], listing["last_id"], listing["has_more"]) == ("claude-a", "claude-b", False)
    assert all(m["type"] == "model" for m in listing["data"])
