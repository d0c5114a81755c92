"""The provider-neutral mock model: deterministic replies, tool calls, limits, usage, embeddings."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from aimm_gateway.mock.engine import (
    CONTENT_FILTER_MARKER,
    ECHO_LIMIT,
    MockInput,
    MockMessage,
    MockTool,
    count_choice_tokens,
    embed,
    estimate_tokens,
    generate,
    schema_example,
)

WEATHER = MockTool(
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 3, "maximum": 10},
            "verbose": {"type": "boolean"},
        },
        "required": ["city", "unit", "days"],
    },
)
TIME = MockTool("get_time", {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]})


def user(text: str) -> MockMessage:
    return MockMessage("user", text)


def make(*messages: MockMessage, **kwargs: Any) -> MockInput:
    return MockInput(model="m-1", messages=list(messages), **kwargs)


def test_reply_echoes_last_user_text_and_is_deterministic() -> None:
    inp = make(MockMessage("system", "be brief"), user("first"), MockMessage("assistant", "ok"), user("Hi there"))
    a, b = generate(inp), generate(inp)
    assert a.choices[0].text == "Mock reply from m-1: Hi there"
    assert a.choices[0].finish_reason == "stop"
    assert a.choices[0].tool_calls == []
    assert a == b


def test_long_user_text_is_truncated_in_the_echo() -> None:
    out = generate(make(user("word " * 200)))
    text = out.choices[0].text or ""
    assert text.endswith("...")
    assert len(text) == len("Mock reply from m-1: ") + ECHO_LIMIT


def test_n_choices_differ_and_usage_sums_them() -> None:
    out = generate(make(user("hello"), n=3))
    texts = [c.text for c in out.choices]
    assert texts == [
        "Mock reply from m-1: hello",
        "Mock reply 2 from m-1: hello",
        "Mock reply 3 from m-1: hello",
    ]
    assert out.completion_tokens == sum(count_choice_tokens(c) for c in out.choices)
    assert out.total_tokens == out.prompt_tokens + out.completion_tokens


def test_prompt_tokens_are_estimated_per_message_and_tool() -> None:
    short = generate(make(user("hi"))).prompt_tokens
    longer = generate(make(user("hi"), MockMessage("assistant", "x" * 40), user("hi"))).prompt_tokens
    with_tool = generate(make(user("hi"), tools=[WEATHER], tool_choice="none")).prompt_tokens
    assert short == 3 + 4 + 1  # priming + message overhead + ceil(2 / 4)
    assert longer == short + (4 + 10) + (4 + 1)
    assert with_tool > short
    assert estimate_tokens("") == 1
    assert estimate_tokens("abcde") == 2


def test_auto_tool_choice_calls_the_first_tool_with_schema_arguments() -> None:
    out = generate(make(user("weather in Paris?"), tools=[WEATHER], parallel_tool_calls=False))
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.text is None
    [call] = choice.tool_calls
    assert call.name == "get_weather"
    args = json.loads(call.arguments_json)
    assert args == call.arguments == {"city": "mock-city", "unit": "celsius", "days": 3}
    assert len(call.id) == 24
    assert generate(make(user("weather in Paris?"), tools=[WEATHER], parallel_tool_calls=False)) == out


def test_parallel_tool_calls_call_two_tools_with_distinct_ids() -> None:
    out = generate(make(user("both"), tools=[WEATHER, TIME]))
    calls = out.choices[0].tool_calls
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert calls[0].id != calls[1].id
    single = generate(make(user("both"), tools=[WEATHER, TIME], parallel_tool_calls=False))
    assert [c.name for c in single.choices[0].tool_calls] == ["get_weather"]


def test_named_tool_choice_calls_that_tool_only() -> None:
    out = generate(make(user("time?"), tools=[WEATHER, TIME], tool_choice={"name": "get_time"}))
    [call] = out.choices[0].tool_calls
    assert call.name == "get_time"
    assert call.arguments == {"tz": "mock-tz"}


def test_tool_choice_none_answers_with_text() -> None:
    out = generate(make(user("weather?"), tools=[WEATHER], tool_choice="none"))
    assert out.choices[0].tool_calls == []
    assert out.choices[0].text == "Mock reply from m-1: weather?"


def test_tool_result_turn_is_answered_with_text_mentioning_the_result() -> None:
    inp = make(
        user("weather?"),
        MockMessage("assistant", ""),
        MockMessage("tool", '{"temp": 21}', is_tool_result=True, tool_name="get_weather"),
        tools=[WEATHER],
    )
    choice = generate(inp).choices[0]
    assert choice.tool_calls == []
    assert choice.finish_reason == "stop"
    assert choice.text == 'Mock reply from m-1: the get_weather tool returned: {"temp": 21}'


def test_required_tool_choice_calls_even_after_a_tool_result() -> None:
    inp = make(user("x"), MockMessage("tool", "r", is_tool_result=True), tools=[WEATHER], tool_choice="required")
    assert generate(inp).choices[0].finish_reason == "tool_calls"


def test_json_mode_reply_is_a_json_object() -> None:
    text = generate(make(user("give json"), json_mode=True)).choices[0].text or ""
    assert json.loads(text) == {"reply": "Mock reply from m-1: give json"}


def test_json_schema_reply_conforms_to_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "score": {"type": "number", "minimum": 0.5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "kind": {"$ref": "#/$defs/kind"},
        },
        "required": ["answer", "score", "tags", "kind"],
        "$defs": {"kind": {"type": "string", "enum": ["a", "b"]}},
    }
    text = generate(make(user("q"), json_mode=True, json_schema=schema)).choices[0].text or ""
    assert json.loads(text) == {
        "answer": "mock-answer",
        "score": 0.5,
        "tags": ["mock-tags", "mock-tags"],
        "kind": "a",
    }


def test_schema_example_covers_common_keywords() -> None:
    assert schema_example({"type": "string", "format": "date-time"}) == "2024-01-01T00:00:00Z"
    assert schema_example({"type": "string", "minLength": 8}) == "mockxxxx"
    assert schema_example({"type": ["null", "integer"], "exclusiveMinimum": 5}) == 6
    assert schema_example({"type": "integer", "maximum": 0}) == 0
    assert schema_example({"anyOf": [{"type": "boolean"}, {"type": "string"}]}) is True
    assert schema_example({"const": 42}) == 42
    assert schema_example({"properties": {"a": {"type": "string"}}}) == {}  # nothing required
    nested = {
        "type": "object",
        "properties": {"o": {"type": "object", "properties": {"x": {"type": "null"}}, "required": ["x"]}},
        "required": ["o"],
    }
    assert schema_example(nested) == {"o": {"x": None}}
    loop = {
        "$ref": "#/$defs/node",
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}},
    }
    json.dumps(schema_example(loop))  # recursion is bounded, result is still JSON


def test_max_tokens_truncates_with_finish_reason_length() -> None:
    out = generate(make(user("a fairly long question for the mock"), max_tokens=3))
    choice = out.choices[0]
    assert choice.finish_reason == "length"
    assert choice.text == "Mock reply f"
    assert out.completion_tokens == 3


def test_stop_sequence_cuts_the_text() -> None:
    choice = generate(make(user("hello world"), stop=["world", "reply"])).choices[0]
    assert choice.text == "Mock "
    assert choice.finish_reason == "stop"
    assert choice.stop_sequence == "reply"


def test_whichever_limit_comes_first_wins() -> None:
    stop_late = generate(make(user("hello world"), stop=["world"], max_tokens=2)).choices[0]
    assert (stop_late.text, stop_late.finish_reason, stop_late.stop_sequence) == ("Mock rep", "length", None)
    stop_early = generate(make(user("hello world"), stop=["reply"], max_tokens=50)).choices[0]
    assert (stop_early.text, stop_early.finish_reason) == ("Mock ", "stop")


def test_content_filter_marker_yields_content_filter() -> None:
    out = generate(make(user(f"please {CONTENT_FILTER_MARKER} this"), tools=[WEATHER], n=2))
    assert [c.finish_reason for c in out.choices] == ["content_filter", "content_filter"]
    assert all(c.text is None and not c.tool_calls for c in out.choices)


@pytest.mark.parametrize("dims", [1, 8, 256, 1536])
def test_embeddings_are_deterministic_unit_vectors(dims: int) -> None:
    first = embed(["alpha", "beta"], dims)
    again = embed(["alpha", "beta"], dims)
    assert first == again
    assert [len(v) for v in first] == [dims, dims]
    for vector in first:
        assert math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-9)
    if dims > 1:
        assert first[0] != first[1]
