"""OpenAI <-> Cohere v2 chat translation, with the official `cohere` SDK as the oracle.

Request bodies are checked key by key against the parameter types of the SDK's own
`V2Client.chat` (validated by pydantic, then strictly: no field the SDK's models don't know).
Response and stream-event fixtures are validated with the SDK's `V2ChatResponse` and
`V2ChatStreamResponse`, the same way, so they are real shapes. Translated output must parse with
the `openai` SDK's models.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import orjson
import pytest
from cohere import EmbedByTypeResponse
from cohere.v2.client import V2Client
from cohere.v2.types import V2ChatResponse, V2ChatStreamResponse
from pydantic import BaseModel, TypeAdapter

from aimm_gateway.canonical import validate_chat, validate_embeddings
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.cohere_translate import (
    CohereStreamTranslator,
    cohere_usage,
    from_cohere_embed_response,
    from_cohere_response,
    to_cohere_embed_request,
    to_cohere_request,
)
from tests.unit.openai_shapes import (
    PNG_B64,
    WEATHER_TOOL,
    assert_openai_chunks,
    assert_openai_completion,
    reassemble,
    rejected,
    user,
)
from tests.unit.test_bedrock_adapter import CLOCK_TOOL, PERSON_FORMAT

MODEL = ModelConfig(name="c", provider="cohere", model="command-a-03-2025")
EMBED_MODEL = ModelConfig(name="e", provider="cohere", model="embed-v4.0")


# ---------------------------------------------------------------------------------------------
# Oracles: the cohere SDK's types

_CHAT_HINTS = {k: v for k, v in typing.get_type_hints(V2Client.chat).items() if k not in ("return", "request_options")}
CHAT_PARAMS = frozenset(_CHAT_HINTS) | {"stream"}
_ENUMS = {"tool_choice": ("REQUIRED", "NONE"), "safety_mode": ("CONTEXTUAL", "STRICT", "OFF")}  # hints add `Any`
_FINISH_REASONS = ("COMPLETE", "STOP_SEQUENCE", "MAX_TOKENS", "TOOL_CALL", "ERROR", "TIMEOUT")
STREAM_EVENT = TypeAdapter(V2ChatStreamResponse)


def no_extras(value: Any, path: str) -> None:
    """The SDK's models allow unknown fields; the oracle does not."""
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{path}: fields unknown to the cohere SDK: {sorted(value.model_extra or {})}"
        for name in type(value).model_fields:
            no_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for k, item in enumerate(value):
            no_extras(item, f"{path}[{k}]")


def assert_cohere_request(body: dict[str, Any]) -> None:
    orjson.dumps(body)
    assert set(body) <= CHAT_PARAMS, sorted(set(body) - CHAT_PARAMS)
    assert {"model", "messages"} <= set(body)
    for key, value in body.items():
        if key == "stream":
            assert isinstance(value, bool)
            continue
        if key in _ENUMS:
            assert value in _ENUMS[key], f"{key}: {value!r}"
            continue
        no_extras(TypeAdapter(_CHAT_HINTS[key]).validate_python(value, strict=False), key)


def assert_cohere_response(data: dict[str, Any]) -> None:
    no_extras(V2ChatResponse.model_validate(data), "response")
    assert data["finish_reason"] in _FINISH_REASONS


def assert_cohere_event(event: dict[str, Any]) -> None:
    parsed = STREAM_EVENT.validate_python(event)
    assert parsed.type == event["type"]
    no_extras(parsed, event["type"])


def test_the_request_oracle_can_fail() -> None:
    good = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert_cohere_request(good)
    for bad in (
        {**good, "top_p": 0.5},  # OpenAI's name, not Cohere's
        {**good, "messages": [{"role": "developer", "content": "hi"}]},
        {**good, "messages": [{"role": "tool", "content": "hi"}]},  # tool_call_id missing
        {**good, "messages": [{"role": "user", "content": [{"type": "image", "url": "x"}]}]},
        {**good, "tool_choice": "required"},
        {**good, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}]},
    ):
        with pytest.raises((AssertionError, ValueError)):
            assert_cohere_request(bad)


# ---------------------------------------------------------------------------------------------
# Helpers


def build(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    out = to_cohere_request(validate_chat({"model": "c", **body}), MODEL, stream)
    assert_cohere_request(out)
    return out


def rejects(body: dict[str, Any]) -> InvalidRequest:
    return rejected(lambda r: to_cohere_request(r, MODEL, False), {"model": "c", **body})


def cohere_response(message: dict[str, Any], finish: str = "COMPLETE") -> dict[str, Any]:
    data = {
        "id": "5a3c6e4e-7f4f-4bbd-a2c5-5c0b2d2e1b11",
        "finish_reason": finish,
        "message": {"role": "assistant", **message},
        "usage": {
            "billed_units": {"input_tokens": 20, "output_tokens": 9},
            "tokens": {"input_tokens": 84, "output_tokens": 9},
        },
    }
    assert_cohere_response(data)
    return data


def cohere_events(data: dict[str, Any], piece: int = 5) -> list[dict[str, Any]]:
    """The v2 stream Cohere sends for `data`."""
    message = data["message"]
    events: list[dict[str, Any]] = [
        {"id": data["id"], "type": "message-start", "delta": {"message": {"role": "assistant"}}}
    ]
    if message.get("tool_plan"):
        plan = message["tool_plan"]
        events += [
            {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": plan[i : i + piece]}}}
            for i in range(0, len(plan), piece)
        ]
    for index, block in enumerate(message.get("content") or ()):
        kind = block["type"]
        events.append(
            {"type": "content-start", "index": index, "delta": {"message": {"content": {"type": kind, kind: ""}}}}
        )
        full = block[kind]
        events += [
            {"type": "content-delta", "index": index, "delta": {"message": {"content": {kind: full[i : i + piece]}}}}
            for i in range(0, len(full), piece)
        ]
        events.append({"type": "content-end", "index": index})
    for index, call in enumerate(message.get("tool_calls") or ()):
        header = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
        events.append({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": header}}})
        args = call["function"]["arguments"]
        events += [
            {
                "type": "tool-call-delta",
                "index": index,
                "delta": {"message": {"tool_calls": {"function": {"arguments": args[i : i + piece]}}}},
            }
            for i in range(0, len(args), piece)
        ]
        events.append({"type": "tool-call-end", "index": index})
    events.append({"type": "message-end", "delta": {"finish_reason": data["finish_reason"], "usage": data["usage"]}})
    for event in events:
        assert_cohere_event(event)
    return events


def translate(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = CohereStreamTranslator("command-a-03-2025")
    chunks = [c for e in events for c in translator.feed(e["type"], e)]
    assert translator.done
    return [*chunks, translator.final_usage_chunk()]


# ---------------------------------------------------------------------------------------------
# Request translation


def test_minimal_request() -> None:
    assert build({"messages": [user("Hi")]}) == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert build({"messages": [user("Hi")], "stream": True}, stream=True)["stream"] is True


def test_roles_parts_and_sampling() -> None:
    out = build(
        {
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "system", "content": ""},  # empty: left out
                user(
                    [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://img.test/cat.png"}},
                    ]
                ),
                {"role": "assistant", "content": "A pixel."},
                user("Thanks"),
            ],
            "max_tokens": 50,
            "temperature": 0.3,
            "top_p": 0.8,
            "stop": ["END"],
            "seed": 7,
            "frequency_penalty": 0.1,
            "presence_penalty": 0.2,
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://img.test/cat.png"}},
            ],
        },
        {"role": "assistant", "content": "A pixel."},
        {"role": "user", "content": "Thanks"},
    ]
    assert {k: out[k] for k in ("max_tokens", "temperature", "p", "stop_sequences", "seed")} == {
        "max_tokens": 50,
        "temperature": 0.3,
        "p": 0.8,
        "stop_sequences": ["END"],
        "seed": 7,
    }
    assert (out["frequency_penalty"], out["presence_penalty"]) == (0.1, 0.2)


def test_tools_choices_and_tool_history() -> None:
    calls = [
        {
            "id": "get_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "get_time_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    body = {
        "messages": [
            user("Weather and time?"),
            {"role": "assistant", "content": "I will check both.", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "get_weather_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "get_time_2", "content": [{"type": "text", "text": "noon"}]},
        ],
        "tools": [WEATHER_TOOL, CLOCK_TOOL],
    }
    out = build(body)
    assert out["messages"][1] == {"role": "assistant", "tool_calls": calls, "tool_plan": "I will check both."}
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "get_weather_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "get_time_2", "content": "noon"},
    ]
    assert out["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": WEATHER_TOOL["function"]["parameters"],
            "description": "Weather for a city",
        },
    }
    assert "tool_choice" not in out  # auto is Cohere's default
    assert build({**body, "tool_choice": "required"})["tool_choice"] == "REQUIRED"
    assert build({**body, "tool_choice": "none"})["tool_choice"] == "NONE"


def test_json_modes() -> None:
    assert build({"messages": [user("JSON please")], "response_format": {"type": "json_object"}})[
        "response_format"
    ] == {"type": "json_object"}
    out = build({"messages": [user("A person")], "response_format": PERSON_FORMAT})
    assert out["response_format"] == {"type": "json_object", "json_schema": PERSON_FORMAT["json_schema"]["schema"]}


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 1.2}, "temperature"),
        ({"frequency_penalty": -0.5}, "frequency_penalty"),
        ({"presence_penalty": 1.5}, "presence_penalty"),
        ({"logprobs": True}, "logprobs"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            "tool_choice",
        ),
        ({"tools": [WEATHER_TOOL], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": [WEATHER_TOOL], "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [user("Hi"), {"role": "assistant", "content": "Sure"}]}, "messages"),
        (
            {"messages": [user([{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}])]},
            "messages[0].content[0]",
        ),
    ],
)
def test_what_cohere_cannot_do_is_a_400_naming_the_field(extra: dict[str, Any], param: str) -> None:
    assert rejects({"messages": [user("Hi")], **extra}).param == param


# ---------------------------------------------------------------------------------------------
# Responses


def test_text_response_uses_billed_units() -> None:
    data = cohere_response({"content": [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Hello!"}]})
    parsed = assert_openai_completion(from_cohere_response(data, "command-a-03-2025"))
    assert parsed.id == "chatcmpl-5a3c6e4e-7f4f-4bbd-a2c5-5c0b2d2e1b11"
    assert parsed.choices[0].message.content == "Hello!"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (20, 9)


def test_tool_call_response_keeps_the_plan_as_content() -> None:
    call = {
        "id": "get_weather_abc",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    data = cohere_response({"tool_plan": "I will look it up.", "tool_calls": [call]}, "TOOL_CALL")
    parsed = assert_openai_completion(from_cohere_response(data, "command-a-03-2025"))
    assert parsed.choices[0].message.content == "I will look it up."
    assert [c.model_dump() for c in parsed.choices[0].message.tool_calls or []] == [call]
    assert parsed.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(("reason", "finish"), [("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length")])
def test_finish_reasons(reason: str, finish: str) -> None:
    data = cohere_response({"content": [{"type": "text", "text": "x"}]}, reason)
    assert from_cohere_response(data, "m")["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(("reason", "status"), [("ERROR", 502), ("TIMEOUT", 504)])
def test_failed_generations_are_upstream_errors(reason: str, status: int) -> None:
    with pytest.raises(UpstreamError) as info:
        from_cohere_response(cohere_response({"content": []}, reason), "m")
    assert info.value.status == status and info.value.retryable


def test_usage_falls_back_to_tokens() -> None:
    usage = cohere_usage({"tokens": {"input_tokens": 5, "output_tokens": 6}, "cached_tokens": 2})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (5, 6, 2)


# ---------------------------------------------------------------------------------------------
# Streams


def test_stream_text_reassembles_to_the_plain_answer() -> None:
    data = cohere_response(
        {
            "content": [
                {"type": "thinking", "thinking": "let me see"},
                {"type": "text", "text": "Hello there, streamed."},
            ]
        }
    )
    chunks = translate(cohere_events(data))
    assert_openai_chunks(chunks)
    plain = from_cohere_response(data, "command-a-03-2025")
    streamed = reassemble(chunks)
    assert streamed["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert (streamed["finish_reason"], streamed["usage"]) == ("stop", plain["usage"])
    assert {c["id"] for c in chunks} == {plain["id"]}


def test_stream_parallel_tool_calls() -> None:
    calls = [
        {
            "id": "get_weather_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "get_time_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
    ]
    data = cohere_response({"tool_plan": "Checking both.", "tool_calls": calls}, "TOOL_CALL")
    chunks = translate(cohere_events(data, piece=3))
    assert_openai_chunks(chunks)
    plain = from_cohere_response(data, "m")["choices"][0]["message"]
    assert reassemble(chunks)["message"] == {"content": plain["content"], "tool_calls": plain["tool_calls"]}
    assert reassemble(chunks)["finish_reason"] == "tool_calls"


def test_stream_error_end_raises() -> None:
    translator = CohereStreamTranslator("m")
    translator.feed("message-start", {"type": "message-start", "id": "x", "delta": {"message": {"role": "assistant"}}})
    event = {"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}}
    assert_cohere_event(event)
    with pytest.raises(UpstreamError, match="internal server error"):
        translator.feed("message-end", event)


# ---------------------------------------------------------------------------------------------
# Embeddings


def test_embed_request_and_response() -> None:
    req = validate_embeddings({"model": "e", "input": ["a", "b"], "dimensions": 256})
    assert to_cohere_embed_request(req, EMBED_MODEL) == {
        "model": "embed-v4.0",
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 256,
    }
    data = {
        "id": "e1",
        "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
        "texts": ["a", "b"],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": 2}},
        "response_type": "embeddings_by_type",
    }
    no_extras(EmbedByTypeResponse.model_validate(data), "embed")
    out = from_cohere_embed_response(data, "embed-v4.0", None)
    assert out["data"][1] == {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]}
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


@pytest.mark.parametrize(("inputs", "says"), [([[1, 2]], "token arrays"), (["x"] * 97, "at most 96")])
def test_embed_limits_are_400s(inputs: list[Any], says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        to_cohere_embed_request(validate_embeddings({"model": "e", "input": inputs}), EMBED_MODEL)


def test_sdk_chat_params_cover_what_we_send() -> None:
    sent = {
        "model",
        "messages",
        "tools",
        "strict_tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "p",
        "stop_sequences",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "response_format",
        "stream",
    }
    assert sent <= CHAT_PARAMS
    assert "stream" not in inspect.signature(V2Client.chat).parameters  # the SDK adds it for chat_stream
