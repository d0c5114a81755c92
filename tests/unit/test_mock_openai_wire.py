"""OpenAI wire format of the mock: validated against the official openai SDK types."""

from __future__ import annotations

import base64
import copy
import json
import math
import struct
from typing import Any

import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageFunctionToolCall

from aimm_gateway.mock import openai_wire as wire
from aimm_gateway.mock.engine import MockValidationError, generate
from tests.unit.openai_shapes import WEATHER_UNIT_TOOL

TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello mock"}], **extra}


def complete(body: dict[str, Any]) -> ChatCompletion:
    raw = wire.render_completion(body, generate(wire.parse_request(body)))
    return ChatCompletion.model_validate(raw)


def stream(body: dict[str, Any], chunks: int = 4) -> list[dict[str, Any]]:
    out = generate(wire.parse_request(body))
    events = list(wire.render_stream(body, out, chunks))
    for event in events:
        ChatCompletionChunk.model_validate(event)
    return events


def called(completion: ChatCompletion) -> list[str]:
    calls = completion.choices[0].message.tool_calls or []
    return [c.function.name for c in calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]


def rejects(body: Any) -> dict[str, Any]:
    with pytest.raises(MockValidationError) as info:
        wire.parse_request(body)
    assert info.value.status == 400
    error = info.value.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    result: dict[str, Any] = error
    return result


# ---------------------------------------------------------------------------------------------
# Non-streaming


def test_completion_has_openais_exact_shape() -> None:
    body = chat()
    raw = wire.render_completion(body, generate(wire.parse_request(body)))
    assert set(raw) == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    }
    assert raw["id"].startswith("chatcmpl-")
    assert raw["object"] == "chat.completion"
    assert raw["choices"][0] == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "Mock reply from gpt-4o: Hello mock",
            "refusal": None,
            "annotations": [],
        },
        "logprobs": None,
        "finish_reason": "stop",
    }
    usage = raw["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert set(usage["completion_tokens_details"]) == {
        "reasoning_tokens",
        "audio_tokens",
        "accepted_prediction_tokens",
        "rejected_prediction_tokens",
    }
    parsed = ChatCompletion.model_validate(raw)
    assert parsed.choices[0].message.content == "Mock reply from gpt-4o: Hello mock"


def test_tool_call_completion() -> None:
    parsed = complete(chat(tools=[WEATHER_UNIT_TOOL]))
    choice = parsed.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock-city", "unit": "c"}


def test_parallel_and_named_tool_choice() -> None:
    assert called(complete(chat(tools=[WEATHER_UNIT_TOOL, TIME_TOOL]))) == ["get_weather", "get_time"]
    single = complete(chat(tools=[WEATHER_UNIT_TOOL, TIME_TOOL], parallel_tool_calls=False)).choices[0]
    assert len(single.message.tool_calls or []) == 1
    named = complete(
        chat(
            tools=[WEATHER_UNIT_TOOL, TIME_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )
    )
    assert called(named) == ["get_time"]
    none = complete(chat(tools=[WEATHER_UNIT_TOOL], tool_choice="none")).choices[0]
    assert none.message.tool_calls is None and none.finish_reason == "stop"


def test_tool_result_conversation_round_trip() -> None:
    body = chat(tools=[WEATHER_UNIT_TOOL])
    first = complete(body).choices[0].message
    call = (first.tool_calls or [])[0]
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": [{"type": "text", "text": "sunny, 21C"}]},
    ]
    answer = complete(body).choices[0]
    assert answer.finish_reason == "stop"
    assert answer.message.content == "Mock reply from gpt-4o: the get_weather tool returned: sunny, 21C"


def test_limits_and_n() -> None:
    cut = complete(chat(max_completion_tokens=2)).choices[0]
    assert (cut.finish_reason, cut.message.content) == ("length", "Mock rep")
    legacy = complete(chat(max_tokens=2)).choices[0]
    assert legacy.finish_reason == "length"
    stopped = complete(chat(stop="from")).choices[0]
    assert (stopped.finish_reason, stopped.message.content) == ("stop", "Mock reply ")
    many = complete(chat(n=2))
    assert [c.index for c in many.choices] == [0, 1]


def test_multimodal_user_content_is_accepted() -> None:
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    parts = [
        {"type": "text", "text": "What is in"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": png}},
    ]
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": parts}],
    }
    assert complete(body).choices[0].message.content == "Mock reply from gpt-4o: What is in [image] [image]"


def test_json_modes() -> None:
    body = chat(response_format={"type": "json_object"})
    body["messages"][0]["content"] = "Reply in JSON please"
    assert json.loads(complete(body).choices[0].message.content or "") == {
        "reply": "Mock reply from gpt-4o: Reply in JSON please"
    }
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    structured = chat(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}})
    assert json.loads(complete(structured).choices[0].message.content or "") == {"ok": True}


def test_content_filter_finish_reason() -> None:
    body = chat()
    body["messages"][0]["content"] = "bad [[content_filter]] words"
    choice = complete(body).choices[0]
    assert (choice.finish_reason, choice.message.content) == ("content_filter", None)


def test_unknown_parameters_can_be_allowed_for_compatible_providers() -> None:
    assert rejects(chat(top_k=3))["message"] == "Unrecognized request argument supplied: top_k"
    assert wire.parse_request(chat(top_k=3), allow_unknown=True).model == "gpt-4o"


# ---------------------------------------------------------------------------------------------
# Streaming


def test_stream_sequence_with_usage() -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    events = stream(body, chunks=4)
    first, *content, finish, usage = events
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert len(content) == 4
    text = "".join(e["choices"][0]["delta"]["content"] for e in content)
    assert text == complete(chat()).choices[0].message.content
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(e["usage"] is None for e in events[:-1])
    assert usage["choices"] == []
    assert usage["usage"] == complete(chat()).usage.model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert len({e["id"] for e in events}) == 1
    assert all(e["object"] == "chat.completion.chunk" for e in events)


def test_stream_without_include_usage_has_no_usage_field() -> None:
    events = stream(chat(stream=True))
    assert all("usage" not in e for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


def test_streamed_tool_calls_follow_openais_fragmenting() -> None:
    events = stream(chat(stream=True, tools=[WEATHER_UNIT_TOOL, TIME_TOOL]), chunks=3)
    deltas = [e["choices"][0]["delta"] for e in events]
    assert deltas[0]["role"] == "assistant"
    headers = [tc for d in deltas for tc in d.get("tool_calls", []) if "id" in tc]
    assert [(h["index"], h["type"], h["function"]["name"], h["function"]["arguments"]) for h in headers] == [
        (0, "function", "get_weather", ""),
        (1, "function", "get_time", ""),
    ]
    arguments = {0: "", 1: ""}
    for delta in deltas:
        for tc in delta.get("tool_calls", []):
            if "id" not in tc:
                assert set(tc) == {"index", "function"}
                arguments[tc["index"]] += tc["function"]["arguments"]
    assert json.loads(arguments[0]) == {"city": "mock-city", "unit": "c"}
    assert json.loads(arguments[1]) == {}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_with_n_choices_finishes_each() -> None:
    events = stream(chat(stream=True, n=2), chunks=2)
    finished = [e["choices"][0]["index"] for e in events if e["choices"][0]["finish_reason"]]
    assert finished == [0, 1]


# ---------------------------------------------------------------------------------------------
# Validation: each case is (mutation of a valid body, expected param, code, message fragment)


def _with(**changes: Any) -> dict[str, Any]:
    body = chat()
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _messages(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": list(messages)}


USER = {"role": "user", "content": "hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}

INVALID_CASES: list[tuple[str, dict[str, Any], str | None, str | None, str]] = [
    ("no model", _with(model=...), None, None, "you must provide a model parameter"),
    ("model not a string", _with(model=5), "model", "invalid_type", "expected a string, but got an integer"),
    (
        "no messages",
        _with(messages=...),
        "messages",
        "missing_required_parameter",
        "Missing required parameter",
    ),
    ("empty messages", _with(messages=[]), "messages", "empty_array", "empty array"),
    (
        "bad role",
        _messages({"role": "robot", "content": "x"}),
        "messages[0].role",
        "invalid_value",
        "Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'",
    ),
    (
        "no content",
        _messages({"role": "user"}),
        "messages[0].content",
        "missing_required_parameter",
        "content",
    ),
    (
        "content number",
        _messages({"role": "user", "content": 3}),
        "messages[0].content",
        "invalid_type",
        "expected one of a string or array of objects",
    ),
    (
        "bad part type",
        _messages({"role": "user", "content": [{"type": "video"}]}),
        "messages[0].content[0].type",
        "invalid_value",
        "Invalid value: 'video'",
    ),
    (
        "image in system",
        _messages({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]}),
        "messages[0].content[0].type",
        "invalid_value",
        "Supported values are: 'text'.",
    ),
    (
        "bad data url",
        _messages({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain,hi"}}]}),
        "messages[0].content[0].image_url.url",
        "invalid_image_format",
        "base64",
    ),
    (
        "bad url",
        _messages({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "not a url"}}]}),
        "messages[0].content[0].image_url.url",
        "invalid_value",
        "Expected a valid URL",
    ),
    (
        "assistant null content",
        _messages(USER, {"role": "assistant", "content": None}),
        "messages[1].content",
        None,
        "expected a string, got null",
    ),
    (
        "tool without id",
        _messages(USER, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "r"}),
        "messages[2].tool_call_id",
        "missing_required_parameter",
        "tool_call_id",
    ),
    (
        "orphan tool message",
        _messages(USER, {"role": "tool", "tool_call_id": "call_1", "content": "r"}),
        "messages.[1].role",
        None,
        "must be a response to a preceeding message with 'tool_calls'",
    ),
    (
        "unanswered tool call",
        _messages(USER, {"role": "assistant", "tool_calls": [CALL]}, USER),
        "messages.[2].role",
        None,
        "did not have response messages: call_1",
    ),
    (
        "wrong tool_call_id",
        _messages(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_9", "content": "r"},
        ),
        "messages.[2].tool_call_id",
        None,
        "'call_9' not found",
    ),
    ("n zero", _with(n=0), "n", "integer_below_min_value", "Expected a value >= 1, but got 0 instead."),
    ("temperature high", _with(temperature=2.5), "temperature", "decimal_above_max_value", "<= 2"),
    ("temperature low", _with(temperature=-1), "temperature", "decimal_below_min_value", ">= 0"),
    ("top_p high", _with(top_p=1.5), "top_p", "decimal_above_max_value", "<= 1"),
    ("max_tokens zero", _with(max_tokens=0), "max_tokens", "integer_below_min_value", ">= 1"),
    (
        "max_completion_tokens str",
        _with(max_completion_tokens="5"),
        "max_completion_tokens",
        "invalid_type",
        "expected an integer, but got a string",
    ),
    (
        "too many stops",
        _with(stop=["a", "b", "c", "d", "e"]),
        "stop",
        "array_above_max_length",
        "maximum length 4",
    ),
    (
        "stream_options without stream",
        _with(stream_options={"include_usage": True}),
        "stream_options",
        None,
        "only allowed when 'stream' is enabled",
    ),
    (
        "tool without function",
        _with(tools=[{"type": "function"}]),
        "tools[0].function",
        "missing_required_parameter",
        "tools[0].function",
    ),
    (
        "tool bad type",
        _with(tools=[{"type": "retrieval"}]),
        "tools[0].type",
        "invalid_value",
        "Supported values are: 'function' and 'custom'.",
    ),
    (
        "tool bad name",
        _with(tools=[{"type": "function", "function": {"name": "has space"}}]),
        "tools[0].function.name",
        "invalid_value",
        "does not match pattern",
    ),
    (
        "tool params not object",
        _with(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
        "tools[0].function.parameters",
        "invalid_type",
        "expected an object",
    ),
    (
        "tool_choice without tools",
        _with(tool_choice="auto"),
        "tool_choice",
        None,
        "only allowed when 'tools' are specified",
    ),
    (
        "parallel without tools",
        _with(parallel_tool_calls=False),
        "parallel_tool_calls",
        None,
        "only allowed when 'tools' are specified",
    ),
    (
        "bad tool_choice",
        _with(tools=[WEATHER_UNIT_TOOL], tool_choice="sometimes"),
        "tool_choice",
        "invalid_value",
        "Supported values are: 'none', 'auto', and 'required'.",
    ),
    (
        "bad response_format",
        _with(response_format={"type": "xml"}),
        "response_format.type",
        "invalid_value",
        "'text', 'json_object', and 'json_schema'",
    ),
    (
        "json_object without the word",
        _with(response_format={"type": "json_object"}),
        "messages",
        None,
        "must contain the word 'json'",
    ),
    (
        "json_schema without name",
        _with(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        "response_format.json_schema.name",
        "missing_required_parameter",
        "json_schema.name",
    ),
    ("stream not bool", _with(stream="yes"), "stream", "invalid_type", "expected a boolean"),
    ("logit_bias not a map", _with(logit_bias="x"), "logit_bias", "invalid_type", "expected an object"),
    ("seed bool", _with(seed=True), "seed", "invalid_type", "expected an integer, but got a boolean"),
    ("bad reasoning_effort", _with(reasoning_effort="max"), "reasoning_effort", "invalid_value", "'minimal'"),
]


@pytest.mark.parametrize(
    ("body", "param", "code", "fragment"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_requests_are_rejected_like_openai(
    body: dict[str, Any], param: str | None, code: str | None, fragment: str
) -> None:
    error = rejects(copy.deepcopy(body))
    assert fragment in error["message"]
    assert error["param"] == param
    assert error["code"] == code


def test_valid_edge_cases_are_accepted() -> None:
    ok = [
        _messages(
            USER,
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "r"},
        ),
        _messages({"role": "function", "name": "f", "content": "legacy"}),
        _with(stream=True, stream_options={"include_usage": False}),
        _with(temperature=0, top_p=1, presence_penalty=-2, frequency_penalty=2, seed=1, user="u", metadata={}),
        _with(tools=[{"type": "custom", "custom": {"name": "grammar"}}], tool_choice="auto"),
    ]
    for body in ok:
        wire.parse_request(body)


def test_auth_error_requires_a_bearer_token() -> None:
    assert wire.auth_error("Bearer sk-anything") is None
    for header in (None, "", "Bearer ", "Basic abc"):
        error = wire.auth_error(header)
        assert error is not None and error.status == 401
        assert "You didn't provide an API key" in error.body["error"]["message"]


@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [
        (429, "requests", "rate_limit_exceeded"),
        (500, "server_error", None),
        (503, "server_error", None),
        (401, "invalid_request_error", "invalid_api_key"),
        (418, "invalid_request_error", None),
    ],
)
def test_fault_error_bodies(status: int, type_: str, code: str | None) -> None:
    error = wire.fault_error_body(status)["error"]
    assert (error["type"], error["code"], error["param"]) == (type_, code, None)
    assert error["message"]


# ---------------------------------------------------------------------------------------------
# Embeddings and models


def test_embeddings_float() -> None:
    raw = wire.render_embeddings({"model": "text-embedding-3-small", "input": ["a", "bb"], "encoding_format": "float"})
    parsed = CreateEmbeddingResponse.model_validate(raw)
    assert [d.index for d in parsed.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in parsed.data)
    assert math.isclose(math.hypot(*parsed.data[0].embedding), 1.0, rel_tol=1e-9)
    assert parsed.usage.prompt_tokens == parsed.usage.total_tokens == 2


def test_embeddings_base64_is_little_endian_float32() -> None:
    body: dict[str, Any] = {"model": "text-embedding-3-large", "input": "hello", "dimensions": 64}
    floats = wire.render_embeddings(body)["data"][0]["embedding"]
    encoded = wire.render_embeddings({**body, "encoding_format": "base64"})["data"][0]["embedding"]
    decoded = struct.unpack("<64f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats, abs=1e-7)
    assert (
        len(wire.render_embeddings({"model": "text-embedding-3-large", "input": "x"})["data"][0]["embedding"]) == 3072
    )


def test_embeddings_accept_token_arrays() -> None:
    single = wire.render_embeddings({"model": "text-embedding-3-small", "input": [1, 2, 3], "dimensions": 8})
    batch = wire.render_embeddings({"model": "text-embedding-3-small", "input": [[1, 2, 3], [4]], "dimensions": 8})
    assert single["usage"]["prompt_tokens"] == 3
    assert batch["usage"]["prompt_tokens"] == 4
    assert single["data"][0]["embedding"] == batch["data"][0]["embedding"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "text-embedding-3-small"}, "Missing required parameter: 'input'"),
        ({"model": "text-embedding-3-small", "input": ""}, "'$.input' is invalid"),
        ({"model": "text-embedding-3-small", "input": []}, "'$.input' is invalid"),
        ({"model": "text-embedding-3-small", "input": ["ok", 5]}, "'$.input' is invalid"),
        (
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"},
            "Supported values are",
        ),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "integer below minimum value"),
        (
            {"model": "text-embedding-3-small", "input": "x", "dimensions": 5000},
            "integer above maximum value",
        ),
        ({"model": "text-embedding-ada-002", "input": "x", "dimensions": 8}, "does not support specifying"),
        ({"input": "x"}, "you must provide a model parameter"),
        (
            {"model": "text-embedding-3-small", "input": "x", "truncate": True},
            "Unrecognized request argument",
        ),
    ],
)
def test_invalid_embedding_requests(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MockValidationError) as info:
        wire.render_embeddings(body)
    assert info.value.status == 400
    assert fragment in info.value.body["error"]["message"]


def test_split_text_pieces() -> None:
    assert wire.split_text("abcdefghij", 3) == ["abcd", "efg", "hij"]
    assert wire.split_text("ab", 8) == ["a", "b"]
    assert wire.split_text("", 4) == []


def test_models_listing() -> None:
    listing = wire.render_models(["gpt-4o", "o3"])
    assert listing["object"] == "list"
    assert [(m["id"], m["object"]) for m in listing["data"]] == [("gpt-4o", "model"), ("o3", "model")]
