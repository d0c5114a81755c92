"""The Cohere mock's v2 wire: validation like the API, responses the cohere SDK's types accept."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cohere import EmbedByTypeResponse, ListModelsResponse

from aimm_gateway.canonical import validate_chat
from aimm_gateway.mock import cohere_wire as wire
from aimm_gateway.mock.engine import MockValidationError, generate
from aimm_gateway.providers.cohere_translate import to_cohere_request
from tests.unit.test_bedrock_adapter import CLOCK_TOOL, PERSON_FORMAT, PNG_B64, WEATHER_TOOL
from tests.unit.test_cohere_adapter import (
    MODEL,
    assert_cohere_event,
    assert_cohere_request,
    assert_cohere_response,
    no_extras,
)

TOOLS = [WEATHER_TOOL, CLOCK_TOOL]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "command-a-03-2025", "messages": [{"role": "user", "content": "Hi there"}], **extra}


def respond(body: dict[str, Any]) -> dict[str, Any]:
    data = wire.render_chat(body, generate(wire.parse_request(body)))
    assert_cohere_response(data)
    return data


def stream(body: dict[str, Any], chunks: int = 3) -> list[dict[str, Any]]:
    events = list(wire.render_stream(body, generate(wire.parse_request(body)), chunks))
    for event in events:
        assert_cohere_event(event)
    return events


def rejects(body: Any) -> str:
    with pytest.raises(MockValidationError) as info:
        wire.parse_request(body)
    assert info.value.status == 400
    assert set(info.value.body) == {"id", "message"}
    message: str = info.value.body["message"]
    assert message.startswith("invalid request: ")
    return message


def test_text_reply_plain_and_streamed() -> None:
    data = respond(chat())
    text = data["message"]["content"][0]["text"]
    assert text == "Mock reply from command-a-03-2025: Hi there"
    assert data["finish_reason"] == "COMPLETE"
    assert data["usage"]["tokens"]["input_tokens"] > data["usage"]["billed_units"]["input_tokens"]
    events = stream(chat(stream=True))
    assert [e["type"] for e in events][:2] == ["message-start", "content-start"]
    assert "".join(e["delta"]["message"]["content"]["text"] for e in events if e["type"] == "content-delta") == text
    assert events[-1]["delta"]["finish_reason"] == "COMPLETE"


def test_tool_calls_plain_and_streamed() -> None:
    body = chat(tools=[t for t in to_cohere_request(validate_chat(chat(tools=TOOLS)), MODEL, False)["tools"]])
    data = respond(body)
    assert data["finish_reason"] == "TOOL_CALL"
    assert [c["function"]["name"] for c in data["message"]["tool_calls"]] == ["get_weather", "get_time"]
    assert data["message"]["tool_plan"]
    events = stream({**body, "stream": True})
    kinds = [e["type"] for e in events]
    assert kinds.count("tool-call-start") == 2 and "tool-plan-delta" in kinds
    args = "".join(
        e["delta"]["message"]["tool_calls"]["function"]["arguments"]
        for e in events
        if e["type"] == "tool-call-delta" and e["index"] == 0
    )
    assert orjson.loads(args) == {"city": "mock-city"}


def test_tool_result_answer_and_stop_reasons() -> None:
    tools = to_cohere_request(validate_chat(chat(tools=TOOLS)), MODEL, False)["tools"]
    call = {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_plan": "Checking.", "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "get_weather_1",
            "content": [{"type": "document", "document": {"data": "18C"}}],
        },
    ]
    data = respond(chat(messages=history, tools=tools))
    assert data["message"]["content"][0]["text"].endswith('the get_weather tool returned: "18C"')
    assert respond(chat(stop_sequences=["there"]))["finish_reason"] == "STOP_SEQUENCE"
    assert respond(chat(max_tokens=2))["finish_reason"] == "MAX_TOKENS"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model must be specified"),
        ({"model": "m"}, "messages must be specified"),
        (chat(messages=[]), "non-empty list"),
        (chat(messages=[{"role": "developer", "content": "x"}]), "role must be one of"),
        (chat(messages=[{"role": "user", "content": " "}]), "at least 1 token long"),
        (chat(messages=[{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]), "tool_call_id must be"),
        (
            chat(messages=[{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "r"}]),
            "not found in previous tool calls",
        ),
        (
            chat(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]),
            "last message must be a user message or tool results",
        ),
        (
            chat(messages=[{"role": "user", "content": "x"}, {"role": "assistant"}, {"role": "user", "content": "z"}]),
            "must have a message",
        ),
        (chat(temperature=1.5), "temperature must be between 0 and 1"),
        (chat(p=2), "p must be between 0 and 1"),
        (chat(max_tokens=0), "max_tokens must be a positive integer"),
        (chat(stop_sequences=list("abcdef")), "at most 5"),
        (chat(top_p=0.5), "parameter top_p is not a valid field"),
        (chat(tool_choice="REQUIRED"), "only be specified together with tools"),
        (chat(tool_choice="auto"), "REQUIRED, NONE"),
        (
            chat(
                tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
                response_format={"type": "json_object"},
            ),
            "not supported together with tools",
        ),
        (chat(response_format={"type": "json_schema"}), "text, json_object"),
    ],
)
def test_validation_errors_like_cohere(body: dict[str, Any], says: str) -> None:
    assert says in rejects(body)


@pytest.mark.parametrize(
    "request_body",
    [
        {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "temperature": 0.2,
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    ],
                }
            ]
        },
        {"messages": [{"role": "user", "content": "Weather?"}], "tools": TOOLS, "tool_choice": "required"},
        {"messages": [{"role": "user", "content": "A person"}], "response_format": PERSON_FORMAT},
    ],
)
def test_the_adapters_requests_are_accepted(request_body: dict[str, Any]) -> None:
    body = to_cohere_request(validate_chat({"model": "c", **request_body}), MODEL, False)
    assert_cohere_request(body)
    respond(body)


def test_json_schema_answer() -> None:
    body = to_cohere_request(
        validate_chat(
            {"model": "c", "messages": [{"role": "user", "content": "A person"}], "response_format": PERSON_FORMAT}
        ),
        MODEL,
        False,
    )
    assert set(orjson.loads(respond(body)["message"]["content"][0]["text"])) == {"name", "age"}


@pytest.mark.parametrize("kind", wire.EMBEDDING_TYPES)
def test_embed_response_types_parse_with_the_sdk(kind: str) -> None:
    body = {"model": "embed-v4.0", "texts": ["a", "bb"], "input_type": "search_document", "embedding_types": [kind]}
    data = wire.render_embed(body)
    parsed = EmbedByTypeResponse.model_validate(data)
    no_extras(parsed, "embed")
    vectors = getattr(parsed.embeddings, "float_" if kind == "float" else kind)
    assert vectors is not None and len(vectors) == 2


def test_embed_validation() -> None:
    base = {"model": "embed-english-v3.0", "texts": ["a"], "input_type": "search_document"}
    assert len(wire.render_embed(base)["embeddings"]["float"][0]) == 1024
    for body, says in (
        ({**base, "input_type": None}, "valid input_type"),
        ({**base, "texts": ["x"] * 97}, "at most 96"),
        ({**base, "output_dimension": 256}, "only supported for embed-v4.0"),
        ({**base, "embedding_types": ["float16"]}, "embedding_types"),
    ):
        with pytest.raises(MockValidationError) as info:
            wire.render_embed(body)
        assert says in info.value.body["message"]


def test_models_list_parses_with_the_sdk() -> None:
    parsed = ListModelsResponse.model_validate(wire.render_models(wire.DEFAULT_MODELS))
    no_extras(parsed, "models")
    assert [m.name for m in parsed.models] == list(wire.DEFAULT_MODELS)


def test_auth_and_fault_bodies() -> None:
    wire.check_headers({}, require_auth=False)
    with pytest.raises(MockValidationError) as info:
        wire.check_headers({"authorization": "Basic x"}, require_auth=True)
    assert info.value.status == 401
    assert set(wire.fault_error_body(429)) == {"id", "message"}
    assert_cohere_event(wire.stream_error_event())
