"""OpenAI <-> Anthropic Messages translation, with the official SDKs as the oracle.

Every request body built here is checked against the `anthropic` SDK's own parameter types,
strictly (unknown keys, wrong literals and missing required keys all fail), and every response
and chunk against the `openai` SDK's models with no unknown fields allowed. Upstream fixtures are
themselves validated with the `anthropic` SDK's response/event models, so they are real shapes.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, NotRequired, Required

import orjson
import pytest
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import TypeAdapter
from typing_extensions import is_typeddict

from aimm_gateway.canonical import ChatRequest, validate_chat
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.anthropic import AnthropicProvider
from aimm_gateway.providers.anthropic_translate import (
    AnthropicStreamTranslator,
    from_anthropic_response,
    json_tool_name,
    to_anthropic_request,
)
from aimm_gateway.providers.base import EmbeddingCall
from aimm_gateway.providers.http import UpstreamPools
from tests.unit.openai_shapes import (
    PNG_B64,
    WEATHER_TOOL,
    assert_openai_chunks,
    assert_openai_completion,
    reassemble,
    rejected,
    user,
)

MODEL = ModelConfig(name="claude", provider="anthropic", model="claude-sonnet-4-5", max_output_tokens=2048)


# ---------------------------------------------------------------------------------------------
# Oracles


_NON_STREAMING = TypeAdapter(MessageCreateParamsNonStreaming)
_STREAMING = TypeAdapter(MessageCreateParamsStreaming)
_EVENT = TypeAdapter(RawMessageStreamEvent)


def _problem(value: Any, tp: Any, path: str) -> str | None:
    """Why `value` does not conform to the SDK type `tp` (None when it does). Strict on TypedDict keys."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return None
    if origin in (Required, NotRequired, typing.Annotated):
        return _problem(value, args[0], path)
    if origin is typing.Union or origin is types.UnionType:
        problems = [_problem(value, arg, path) for arg in args]
        if any(p is None for p in problems):
            return None
        return " | ".join(p for p in problems if p)
    if origin is typing.Literal:
        return None if value in args else f"{path}: {value!r} is not one of {args}"
    if tp is type(None):
        return None if value is None else f"{path}: expected null"
    if is_typeddict(tp):
        return _typed_dict_problem(value, tp, path)
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence) or (
        origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        if not isinstance(value, list):
            return f"{path}: expected a list"
        return next((p for k, v in enumerate(value) if (p := _problem(v, args[0], f"{path}[{k}]"))), None)
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return f"{path}: expected an object"
        return next((p for k, v in value.items() if (p := _problem(v, args[1], f"{path}.{k}"))), None)
    if tp is float:
        return None if isinstance(value, int | float) and not isinstance(value, bool) else f"{path}: not a number"
    if tp is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"{path}: not an integer"
    if isinstance(tp, type):
        return None if isinstance(value, tp) else f"{path}: expected {tp.__name__}"
    if isinstance(tp, typing.TypeVar) or origin is not None:
        return None if isinstance(value, origin or object) else f"{path}: expected {tp}"
    raise TypeError(f"oracle cannot check {tp!r} at {path}")


def _typed_dict_problem(value: Any, tp: Any, path: str) -> str | None:
    if not isinstance(value, dict):
        return f"{path}: expected an object for {tp.__name__}"
    hints = typing.get_type_hints(tp, include_extras=True)
    unknown = set(value) - set(hints)
    if unknown:
        return f"{path}: {tp.__name__} has no keys {sorted(unknown)}"
    # The SDK's modules use string annotations, so `__required_keys__` can't see `Required[...]`.
    missing = {k for k, hint in hints.items() if _is_required(hint, k in tp.__required_keys__)} - set(value)
    if missing:
        return f"{path}: {tp.__name__} misses {sorted(missing)}"
    return next((p for k, v in value.items() if (p := _problem(v, hints[k], f"{path}.{k}"))), None)


# anthropic>=1 dropped temperature/top_p/top_k from its types: the API (version 2023-06-01) still
# takes them for models that sample, and the SDK's MIGRATION.md says to send them as `extra_body`.
# So they are checked here by the API's documented range instead of by the SDK's types.
_EXTRA_BODY_SAMPLING = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0)}


def _is_required(hint: Any, by_totality: bool) -> bool:
    origin = typing.get_origin(hint)
    if origin is Required:
        return True
    if origin is NotRequired:
        return False
    return by_totality


def assert_anthropic_request(body: dict[str, Any], stream: bool) -> None:
    """The SDK's pydantic validation, then the strict structural check (TypedDict validation is lax)."""
    orjson.dumps(body)  # it must be JSON as sent
    typed = {k: v for k, v in body.items() if k not in _EXTRA_BODY_SAMPLING}
    for key, (low, high) in _EXTRA_BODY_SAMPLING.items():
        if key in body:
            value = body[key]
            assert isinstance(value, int | float) and not isinstance(value, bool), f"{key}: not a number"
            assert low <= value <= high, f"{key}: {value} outside {low}..{high}"
    params = MessageCreateParamsStreaming if stream else MessageCreateParamsNonStreaming
    (_STREAMING if stream else _NON_STREAMING).validate_python(typed)
    problem = _problem(typed, params, "body")
    assert problem is None, problem


def anthropic_message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: Any) -> dict[str, Any]:
    msg = {
        "id": "msg_01ABCdef",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 12, **usage},
    }
    AnthropicMessage.model_validate(msg)  # the fixture is a real Anthropic message
    return msg


def anthropic_events(msg: dict[str, Any], piece: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events Anthropic streams for `msg`: text and tool input split into `piece`-char deltas."""
    usage = msg["usage"]
    start = {**msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(msg["content"]):
        events.extend(_block_events(index, block, piece))
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    for event in events:
        if event["type"] != "ping":
            _EVENT.validate_python(event)
    return [(e["type"], e) for e in events]


def _block_events(index: int, block: dict[str, Any], piece: int) -> list[dict[str, Any]]:
    kind = block["type"]
    start: dict[str, Any]
    if kind == "text":
        start, key, delta_type, full = {"type": "text", "text": ""}, "text", "text_delta", block["text"]
    elif kind == "tool_use":
        start = {**block, "input": {}}
        key, delta_type, full = "partial_json", "input_json_delta", orjson.dumps(block["input"]).decode()
    else:
        start = {"type": "thinking", "thinking": "", "signature": ""}
        key, delta_type, full = "thinking", "thinking_delta", block["thinking"]
    out: list[dict[str, Any]] = [{"type": "content_block_start", "index": index, "content_block": start}]
    for at in range(0, len(full), piece):
        delta = {"type": delta_type, key: full[at : at + piece]}
        out.append({"type": "content_block_delta", "index": index, "delta": delta})
    out.append({"type": "content_block_stop", "index": index})
    return out


def translate_stream(events: list[tuple[str, dict[str, Any]]], json_tool: str | None = None) -> list[dict[str, Any]]:
    translator = AnthropicStreamTranslator("claude", json_tool=json_tool)
    chunks = [c for name, data in events for c in translator.feed(name, data)]
    assert translator.done
    return [*chunks, translator.final_usage_chunk()]


def build(body: dict[str, Any], stream: bool = False, model: ModelConfig = MODEL) -> dict[str, Any]:
    request = validate_chat({"model": "claude", **body})
    out = to_anthropic_request(request, model, stream)
    assert_anthropic_request(out, stream)
    return out


def rejects(body: dict[str, Any]) -> InvalidRequest:
    return rejected(lambda r: to_anthropic_request(r, MODEL, False), {"model": "claude", **body})


# ---------------------------------------------------------------------------------------------
# Request translation


def test_minimal_request_uses_upstream_model_and_default_max_tokens() -> None:
    out = build({"messages": [user("Hi")]})
    assert out == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


def test_system_and_developer_messages_become_top_level_system_blocks_in_order() -> None:
    out = build(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "developer",
                    "content": [{"type": "text", "text": "Answer"}, {"type": "text", "text": " in French."}],
                },
                user("Hi"),
            ]
        }
    )
    assert out["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_system_message_with_an_image_is_rejected() -> None:
    err = rejects(
        {
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
                },
                user("Hi"),
            ]
        }
    )
    assert err.param == "messages[0].content[0]"
    assert "only contain text" in err.message


def test_consecutive_same_role_turns_merge_into_one_message() -> None:
    out = build(
        {
            "messages": [
                user("one"),
                user("two"),
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "b"},
                user("three"),
            ]
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]


def test_image_parts_map_to_url_and_base64_sources() -> None:
    out = build(
        {
            "messages": [
                user(
                    [
                        {"type": "text", "text": "Compare"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://img.test/cat.jpg", "detail": "high"},
                        },
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    ]
                )
            ]
        }
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "url", "url": "https://img.test/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
    ]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("data:image/bmp;base64,AAAA", "image/bmp"),
        ("data:image/png,rawbytes", "base64"),
        ("ftp://img.test/cat.jpg", "http(s) or data:"),
    ],
)
def test_unusable_image_urls_are_rejected(url: str, says: str) -> None:
    err = rejects({"messages": [user([{"type": "image_url", "image_url": {"url": url}}])]})
    assert says in err.message
    assert err.param == "messages[0].content[0]"


def test_unsupported_content_part_is_rejected_naming_its_type() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    err = rejects({"messages": [user([part])]})
    assert "'input_audio'" in err.message
    assert err.param == "messages[0].content[0]"


def test_empty_user_content_is_rejected() -> None:
    err = rejects({"messages": [user("  ")]})
    assert err.param == "messages[0].content"


def test_only_system_messages_are_rejected() -> None:
    err = rejects({"messages": [{"role": "system", "content": "x"}]})
    assert "at least one user message" in err.message


def test_final_assistant_prefill_loses_trailing_whitespace() -> None:
    out = build({"messages": [user("Say hi"), {"role": "assistant", "content": "Hello \n"}]})
    assert out["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]}


ASSISTANT_CALLS = {
    "role": "assistant",
    "content": "Checking both.",
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
    ],
}


def test_tool_round_trip_maps_calls_to_tool_use_and_groups_results() -> None:
    out = build(
        {
            "messages": [
                user("Weather in Paris and Oslo?"),
                ASSISTANT_CALLS,
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4C"}]},
                user("Thanks, and tomorrow?"),
            ],
            "tools": [WEATHER_TOOL],
        }
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    # Parallel results share one user turn, ahead of the user's next text.
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "4C"},
            {"type": "text", "text": "Thanks, and tomorrow?"},
        ],
    }
    assert len(out["messages"]) == 3


def test_assistant_with_only_tool_calls_has_no_text_block() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    out = build(
        {
            "messages": [
                user("Weather?"),
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            ],
            "tools": [WEATHER_TOOL],
        }
    )
    # Empty arguments ("") are a call without arguments.
    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}]


def test_tool_ids_outside_anthropics_alphabet_are_rewritten_consistently() -> None:
    call = {"id": "call.1:x", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    out = build(
        {
            "messages": [
                user("Weather?"),
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call.1:x", "content": "18C"},
            ],
            "tools": [WEATHER_TOOL],
        }
    )
    assert out["messages"][1]["content"][0]["id"] == "call_1_x"
    assert out["messages"][2]["content"][0]["tool_use_id"] == "call_1_x"


@pytest.mark.parametrize(("arguments", "says"), [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_bad_tool_call_arguments_are_rejected_naming_the_message(arguments: str, says: str) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    err = rejects({"messages": [user("x"), {"role": "assistant", "tool_calls": [call]}]})
    assert err.param == "messages[1].tool_calls[0].function.arguments"
    assert says in err.message


def test_tools_map_to_name_description_input_schema() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    untyped = {
        "type": "function",
        "function": {"name": "echo", "parameters": {"properties": {"s": {"type": "string"}}}},
    }
    strict = {"type": "function", "function": {**WEATHER_TOOL["function"], "name": "w2", "strict": True}}
    out = build({"messages": [user("x")], "tools": [WEATHER_TOOL, bare, untyped, strict]})
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        {"name": "echo", "input_schema": {"type": "object", "properties": {"s": {"type": "string"}}}},
        {
            "name": "w2",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "strict": True,
        },
    ]
    assert "tool_choice" not in out


def test_tool_with_non_object_schema_is_rejected() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
    err = rejects({"messages": [user("x")], "tools": [tool]})
    assert err.param == "tools[0].function.parameters"


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("none", None, {"type": "none"}),
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),  # nothing to parallelise; Anthropic's none takes no flag
    ],
)
def test_tool_choice_and_parallel_tool_calls(choice: Any, parallel: bool | None, expected: dict[str, Any]) -> None:
    body: dict[str, Any] = {"messages": [user("x")], "tools": [WEATHER_TOOL]}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert build(body)["tool_choice"] == expected


def test_sampling_stop_and_user_fields() -> None:
    out = build(
        {
            "messages": [user("x")],
            "temperature": 0.7,
            "top_p": 0.9,
            "stop": "END",
            "max_tokens": 100,
            "user": "user-42",
        }
    )
    assert out["temperature"] == 0.7
    assert out["top_p"] == 0.9
    assert out["stop_sequences"] == ["END"]
    assert out["max_tokens"] == 100
    assert out["metadata"] == {"user_id": "user-42"}
    assert build({"messages": [user("x")], "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert build({"messages": [user("x")], "max_tokens": 100, "max_completion_tokens": 50})["max_tokens"] == 50


def test_temperature_above_one_is_rejected_naming_the_limit() -> None:
    err = rejects({"messages": [user("x")], "temperature": 1.5})
    assert err.param == "temperature"
    assert "0 to 1" in err.message
    assert build({"messages": [user("x")], "temperature": 1})["temperature"] == 1


def test_n_above_one_is_rejected() -> None:
    err = rejects({"messages": [user("x")], "n": 2})
    assert err.param == "n"
    assert "n" not in build({"messages": [user("x")], "n": 1})


@pytest.mark.parametrize("extra", [{"logprobs": True}, {"top_logprobs": 3, "logprobs": True}, {"top_logprobs": 0}])
def test_logprobs_are_rejected(extra: dict[str, Any]) -> None:
    err = rejects({"messages": [user("x")], **extra})
    assert err.param == "logprobs"


def test_audio_output_is_rejected() -> None:
    err = rejects({"messages": [user("x")], "modalities": ["text", "audio"], "audio": {"voice": "alloy"}})
    assert err.param == "modalities"


def test_openai_only_fields_are_dropped() -> None:
    out = build(
        {
            "messages": [user("x")],
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {"50256": -100},
            "logprobs": False,
            "store": True,
            "metadata": {"team": "a"},
            "reasoning_effort": "low",
            "response_format": {"type": "text"},
            "stream_options": {"include_usage": True},
            "stream": True,
        },
        stream=True,
    )
    assert set(out) == {"model", "max_tokens", "messages", "stream"}
    assert out["stream"] is True


def test_non_streaming_body_has_no_stream_key() -> None:
    assert "stream" not in build({"messages": [user("x")], "stream": True}, stream=False)


def test_json_object_is_rejected() -> None:
    err = rejects({"messages": [user("x")], "response_format": {"type": "json_object"}})
    assert err.param == "response_format"
    assert "json_object" in err.message


PERSON_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}


def test_json_schema_becomes_a_forced_tool() -> None:
    body = {"messages": [user("Invent a person")], "response_format": PERSON_FORMAT}
    out = build(body)
    assert out["tools"] == [
        {
            "name": "person",
            "description": out["tools"][0]["description"],
            "input_schema": PERSON_FORMAT["json_schema"]["schema"],
            "strict": True,
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "person", "disable_parallel_tool_use": True}
    assert json_tool_name(validate_chat({"model": "claude", **body})) == "person"


def test_json_schema_with_tool_choice_none_keeps_tools_and_forces_the_answer_tool() -> None:
    out = build(
        {
            "messages": [user("x")],
            "response_format": PERSON_FORMAT,
            "tools": [WEATHER_TOOL],
            "tool_choice": "none",
        }
    )
    assert [t["name"] for t in out["tools"]] == ["get_weather", "person"]
    assert out["tool_choice"]["name"] == "person"


def test_json_schema_with_required_tool_choice_calls_the_callers_tool() -> None:
    body = {
        "messages": [user("x")],
        "response_format": PERSON_FORMAT,
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
    }
    out = build(body)
    assert [t["name"] for t in out["tools"]] == ["get_weather"]
    assert out["tool_choice"] == {"type": "any"}
    assert json_tool_name(validate_chat({"model": "claude", **body})) is None


def test_json_schema_with_tools_on_auto_is_rejected() -> None:
    err = rejects({"messages": [user("x")], "response_format": PERSON_FORMAT, "tools": [WEATHER_TOOL]})
    assert err.param == "response_format"
    assert "tool_choice" in err.message


def test_json_schema_name_clashing_with_a_tool_is_rejected() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "get_weather", "schema": {"type": "object"}}}
    err = rejects({"messages": [user("x")], "response_format": fmt, "tools": [WEATHER_TOOL], "tool_choice": "none"})
    assert err.param == "response_format.json_schema.name"


def test_json_schema_with_non_object_root_is_rejected() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array"}}}
    err = rejects({"messages": [user("x")], "response_format": fmt})
    assert err.param == "response_format.json_schema.schema"


def test_translation_does_not_mutate_the_request() -> None:
    body = {
        "messages": [user("x")],
        "tools": [WEATHER_TOOL],
        "response_format": PERSON_FORMAT,
        "tool_choice": "none",
    }
    request = validate_chat({"model": "claude", **body})
    before = request.model_dump()
    to_anthropic_request(request, MODEL, True)
    assert request.model_dump() == before


# ---------------------------------------------------------------------------------------------
# Response translation


def test_text_response() -> None:
    msg = anthropic_message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}])
    out = from_anthropic_response(msg, "claude")
    parsed = assert_openai_completion(out)
    assert parsed.id == "chatcmpl-01ABCdef"
    assert parsed.object == "chat.completion"
    assert parsed.model == "claude"
    assert out["system_fingerprint"] is None
    assert parsed.service_tier == "default"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"]["prompt_tokens"] == 25
    assert out["usage"]["completion_tokens"] == 12
    assert out["usage"]["total_tokens"] == 37


def test_tool_use_response_becomes_tool_calls() -> None:
    msg = anthropic_message(
        [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris", "days": [1, 2]},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
        ],
        stop_reason="tool_use",
    )
    out = from_anthropic_response(msg, "claude")
    assert_openai_completion(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":[1,2]}'},
        },
        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
    ]


def test_thinking_blocks_stay_out_of_content_but_count_in_usage() -> None:
    msg = anthropic_message(
        [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "42"},
        ],
        output_tokens=300,
        output_tokens_details={"thinking_tokens": 280},
    )
    out = from_anthropic_response(msg, "claude")
    assert_openai_completion(out)
    assert out["choices"][0]["message"]["content"] == "42"
    assert out["usage"]["completion_tokens"] == 300
    assert out["usage"]["completion_tokens_details"]["reasoning_tokens"] == 280


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reasons(stop_reason: str, expected: str) -> None:
    out = from_anthropic_response(anthropic_message([{"type": "text", "text": "x"}], stop_reason), "claude")
    assert_openai_completion(out)
    assert out["choices"][0]["finish_reason"] == expected


def test_cached_input_counts_in_prompt_tokens() -> None:
    msg = anthropic_message(
        [{"type": "text", "text": "x"}],
        input_tokens=10,
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=200,
        service_tier="priority",
    )
    out = from_anthropic_response(msg, "claude")
    assert_openai_completion(out)
    assert out["usage"]["prompt_tokens"] == 1210
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 1000
    assert out["usage"]["total_tokens"] == 1222
    assert out["service_tier"] == "priority"


def test_empty_response_has_empty_string_content() -> None:
    out = from_anthropic_response(anthropic_message([], "max_tokens"), "claude")
    assert_openai_completion(out)
    assert out["choices"][0]["message"]["content"] == ""
    assert "tool_calls" not in out["choices"][0]["message"]


def test_json_answer_tool_becomes_message_content() -> None:
    msg = anthropic_message(
        [{"type": "tool_use", "id": "toolu_1", "name": "person", "input": {"name": "Ada", "age": 36}}],
        stop_reason="tool_use",
    )
    out = from_anthropic_response(msg, "claude", json_tool="person")
    assert_openai_completion(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert orjson.loads(choice["message"]["content"]) == {"name": "Ada", "age": 36}
    assert "tool_calls" not in choice["message"]


# ---------------------------------------------------------------------------------------------
# Stream translation


TEXT_MSG = anthropic_message([{"type": "text", "text": "Hello there, this is a streamed answer."}])
TOOL_MSG = anthropic_message(
    [
        {"type": "thinking", "thinking": "Two cities, two calls.", "signature": "sig"},
        {"type": "text", "text": "Checking both cities."},
        {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {"city": "Oslo", "unit": "C"}},
    ],
    stop_reason="tool_use",
)


def test_text_stream_chunks() -> None:
    chunks = translate_stream(anthropic_events(TEXT_MSG))
    assert_openai_chunks(chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["id"] == "chatcmpl-01ABCdef" for c in chunks)
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 25
    assert chunks[-1]["usage"]["completion_tokens"] == 12
    texts = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert len(texts) > 3  # really streamed, not buffered
    assert "".join(texts) == TEXT_MSG["content"][0]["text"]


@pytest.mark.parametrize("msg", [TEXT_MSG, TOOL_MSG], ids=["text", "tools"])
def test_stream_reassembles_to_the_non_streaming_answer(msg: dict[str, Any]) -> None:
    streamed = reassemble(translate_stream(anthropic_events(msg)))
    whole = from_anthropic_response(msg, "claude")
    expected_message = {k: v for k, v in whole["choices"][0]["message"].items() if k in ("content", "tool_calls")}
    assert streamed["message"] == expected_message
    assert streamed["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert streamed["usage"] == whole["usage"]


def test_tool_call_indexes_count_tool_calls_only() -> None:
    chunks = translate_stream(anthropic_events(TOOL_MSG))
    assert_openai_chunks(chunks)
    starts = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or () if "id" in tc]
    # Anthropic block indexes 2 and 3 (after thinking and text) are OpenAI tool calls 0 and 1.
    assert starts == [
        {
            "index": 0,
            "id": "toolu_A",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {
            "index": 1,
            "id": "toolu_B",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_streamed_json_answer_tool_becomes_content() -> None:
    msg = anthropic_message(
        [{"type": "tool_use", "id": "toolu_1", "name": "person", "input": {"name": "Ada", "age": 36}}],
        stop_reason="tool_use",
    )
    chunks = translate_stream(anthropic_events(msg, piece=4), json_tool="person")
    assert_openai_chunks(chunks)
    streamed = reassemble(chunks)
    assert streamed["message"] == {"content": '{"name":"Ada","age":36}'}
    assert streamed["finish_reason"] == "stop"
    whole = from_anthropic_response(msg, "claude", json_tool="person")
    assert streamed["message"]["content"] == whole["choices"][0]["message"]["content"]


def test_stream_usage_combines_message_start_and_message_delta() -> None:
    translator = AnthropicStreamTranslator("claude")
    start = {**TEXT_MSG, "content": [], "stop_reason": None}
    start["usage"] = {
        "input_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
        "output_tokens": 1,
    }
    translator.feed("message_start", {"type": "message_start", "message": start})
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
    translator.feed("message_delta", {**delta, "usage": {"output_tokens": 40, "input_tokens": None}})
    translator.feed("message_stop", {"type": "message_stop"})
    usage = translator.final_usage_chunk()["usage"]
    assert usage["prompt_tokens"] == 105
    assert usage["prompt_tokens_details"]["cached_tokens"] == 100
    assert usage["completion_tokens"] == 40


def test_message_stop_without_message_delta_still_finishes() -> None:
    events = [e for e in anthropic_events(TEXT_MSG) if e[0] != "message_delta"]
    chunks = translate_stream(events)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert sum(1 for c in chunks for ch in c["choices"] if ch["finish_reason"]) == 1


def test_events_named_message_are_dispatched_by_their_type() -> None:
    events = [("message", data) for _, data in anthropic_events(TEXT_MSG)]
    assert reassemble(translate_stream(events))["message"]["content"] == TEXT_MSG["content"][0]["text"]


def test_ping_and_unknown_events_produce_nothing() -> None:
    translator = AnthropicStreamTranslator("claude")
    assert translator.feed("ping", {"type": "ping"}) == []
    assert translator.feed("future_event", {"type": "future_event"}) == []
    assert not translator.done


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [("overloaded_error", 503, True), ("rate_limit_error", 429, True), ("api_error", 502, True)],
)
def test_error_event_raises_upstream_error(error_type: str, status: int, retryable: bool) -> None:
    translator = AnthropicStreamTranslator("claude", provider="anthropic")
    translator.feed("message_start", anthropic_events(TEXT_MSG)[0][1])
    with pytest.raises(UpstreamError) as info:
        translator.feed("error", {"type": "error", "error": {"type": error_type, "message": "Overloaded now"}})
    assert info.value.status == status
    assert info.value.retryable is retryable
    assert "Overloaded now" in info.value.message


async def test_embeddings_are_a_clear_400() -> None:
    provider = AnthropicProvider("anthropic", "https://api.anthropic.com", UpstreamPools())
    from aimm_gateway.canonical import validate_embeddings

    call = EmbeddingCall(MODEL, validate_embeddings({"input": "x"}), {"input": "x"}, "k", MODEL.timeouts, "r1")
    with pytest.raises(InvalidRequest) as info:
        await provider.embed(call)
    assert info.value.status == 400
    assert "embeddings" in info.value.message


# ---------------------------------------------------------------------------------------------
# The oracle itself must catch what the lax TypedDict validation lets through.


@pytest.mark.parametrize(
    "broken",
    [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "zzz": 1}]}]},
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url"}}]}]},
        {"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "required"}},
        {"messages": [{"role": "user", "content": "x"}], "logprobs": True},
        {"messages": [{"role": "user", "content": "x"}], "temperature": 1.5},
    ],
)
def test_oracle_is_strict(broken: dict[str, Any]) -> None:
    body = {"model": "m", "max_tokens": 1, **broken}
    with pytest.raises((AssertionError, ValueError)):
        assert_anthropic_request(body, stream=False)


def _typical_request() -> ChatRequest:
    return validate_chat(
        {
            "model": "claude",
            "messages": [
                {"role": "system", "content": "You are terse."},
                user("What is the capital of France?"),
                {"role": "assistant", "content": "Paris."},
            ],
            "temperature": 0.2,
            "max_tokens": 256,
        }
    )


def test_typical_request_passes_the_oracle() -> None:
    assert_anthropic_request(to_anthropic_request(_typical_request(), MODEL, True), stream=True)
