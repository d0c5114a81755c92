"""The Bedrock mock's Converse wire: validation like Bedrock, responses that botocore's shapes accept."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aimm_gateway.canonical import validate_chat
from aimm_gateway.mock import bedrock_wire as wire
from aimm_gateway.mock.engine import CONTENT_FILTER_MARKER, MockValidationError, generate
from aimm_gateway.providers.bedrock_translate import to_converse_request
from tests.unit.test_bedrock_adapter import (
    CLOCK_TOOL,
    PERSON_FORMAT,
    PNG_B64,
    WEATHER_TOOL,
    assert_converse_response,
    assert_stream_event,
)

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
}


def text(t: str) -> dict[str, Any]:
    return {"text": t}


def turn(role: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "content": list(blocks)}


def converse(body: dict[str, Any]) -> dict[str, Any]:
    data = wire.render_converse(MODEL_ID, generate(wire.parse_converse(MODEL_ID, body)))
    assert_converse_response(data)
    return data


def rejects(body: Any, error_type: str = "ValidationException") -> str:
    with pytest.raises(MockValidationError) as info:
        wire.parse_converse(MODEL_ID, body)
    assert info.value.status == 400
    headers = wire.BedrockDialect().error_headers(400, info.value.body)
    assert headers["x-amzn-ErrorType"].startswith(f"{error_type}:")
    assert orjson.loads(orjson.dumps(info.value.body)).keys() == {"message"}  # the type is a header, not JSON
    message: str = info.value.body["message"]
    return message


TOOL_USE = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
TOOL_RESULT = {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}}


def test_text_reply_is_a_valid_converse_response() -> None:
    data = converse({"messages": [turn("user", text("Hello"))], "system": [text("Be brief.")]})
    assert data["output"]["message"]["content"] == [{"text": f"Mock reply from {MODEL_ID}: Hello"}]
    assert data["stopReason"] == "end_turn"
    usage = data["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


def test_tool_calls_then_an_answer_from_the_result() -> None:
    tools = {"tools": [WEATHER_SPEC]}
    first = converse({"messages": [turn("user", text("Weather?"))], "toolConfig": {**tools, "toolChoice": {"any": {}}}})
    assert first["stopReason"] == "tool_use"
    use = first["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "mock-city"}
    second = converse(
        {
            "messages": [
                turn("user", text("Weather?")),
                turn("assistant", {"toolUse": use}),
                turn("user", {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"t": 18}}]}}),
            ],
            "toolConfig": tools,
        }
    )
    assert second["output"]["message"]["content"][0]["text"].endswith('the get_weather tool returned: {"t":18}')


def test_stop_reasons_follow_the_engine() -> None:
    hello = [turn("user", text("Hello there"))]
    assert (
        converse({"messages": hello, "inferenceConfig": {"stopSequences": ["there"]}})["stopReason"] == "stop_sequence"
    )
    assert converse({"messages": hello, "inferenceConfig": {"maxTokens": 2}})["stopReason"] == "max_tokens"
    filtered = converse({"messages": [turn("user", text(CONTENT_FILTER_MARKER))]})
    assert filtered["stopReason"] == "content_filtered"


def test_structured_output_answers_with_the_schema() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    fmt = {
        "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": orjson.dumps(schema).decode()}}}
    }
    data = converse({"messages": [turn("user", text("A person"))], "outputConfig": fmt})
    assert set(orjson.loads(data["output"]["message"]["content"][0]["text"])) == {"name"}


def test_stream_events_are_valid_and_carry_the_same_answer() -> None:
    body = {"messages": [turn("user", text("Stream this please"))]}
    out = generate(wire.parse_converse(MODEL_ID, body))
    events = list(wire.render_converse_stream(MODEL_ID, out, 4))
    for event in events:
        assert_stream_event(event)
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert streamed == wire.render_converse(MODEL_ID, out)["output"]["message"]["content"][0]["text"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "Value null at 'messages'"),
        ({"messages": []}, "must start with a user message"),
        ({"messages": [turn("assistant", text("hi"))]}, "must start with a user message"),
        ({"messages": [turn("system", text("hi"))]}, "enum value set: [user, assistant]"),
        ({"messages": [turn("user", text("a")), turn("user", text("b"))]}, "must alternate"),
        ({"messages": [turn("user")]}, "content field in the Message object at messages.0 is empty"),
        ({"messages": [turn("user", text("  "))]}, "messages.0.content.0 is blank"),
        (
            {
                "messages": [
                    turn(
                        "user",
                        text("a"),
                    )
                ],
                "maxTokens": 5,
            },
            "extraneous key [maxTokens]",
        ),
        ({"messages": [turn("user", {"text": "a", "image": {}})]}, "exactly one of its members"),
        (
            {"messages": [turn("user", {"image": {"format": "bmp", "source": {"bytes": PNG_B64}}})]},
            "[png, jpeg, gif, webp]",
        ),
        (
            {"messages": [turn("user", text("a")), turn("assistant", TOOL_USE), turn("user", TOOL_RESULT)]},
            "toolConfig field must be defined",
        ),
        (
            {"messages": [turn("user", TOOL_RESULT)], "toolConfig": {"tools": [WEATHER_SPEC]}},
            "exceeds the number of toolUse blocks",
        ),
        (
            {
                "messages": [turn("user", text("a")), turn("assistant", TOOL_USE), turn("user", text("b"))],
                "toolConfig": {"tools": [WEATHER_SPEC]},
            },
            "Expected toolResult blocks at messages.2.content",
        ),
        ({"messages": [turn("user", text("a"))], "inferenceConfig": {"temperature": 1.5}}, "less than or equal to 1"),
        ({"messages": [turn("user", text("a"))], "inferenceConfig": {"maxTokens": 0}}, "greater than or equal to 1"),
        ({"messages": [turn("user", text("a"))], "toolConfig": {"tools": []}}, "length greater than or equal to 1"),
        (
            {
                "messages": [turn("user", text("a"))],
                "toolConfig": {"tools": [WEATHER_SPEC], "toolChoice": {"tool": {"name": "nope"}}},
            },
            "not defined in toolConfig.tools",
        ),
        (
            {
                "messages": [turn("user", text("a"))],
                "outputConfig": {
                    "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{not json"}}}
                },
            },
            "not valid JSON",
        ),
    ],
)
def test_validation_errors_like_bedrock(body: dict[str, Any], says: str) -> None:
    assert says in rejects(body)


def test_bad_image_bytes_are_a_serialization_error() -> None:
    body = {"messages": [turn("user", {"image": {"format": "png", "source": {"bytes": "not base64!"}}})]}
    assert "Invalid base64" in rejects(body, "SerializationException")


@pytest.mark.parametrize(
    "request_body",
    [
        {"messages": [{"role": "user", "content": "Hi"}]},
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    ],
                },
                {"role": "assistant", "content": "A pixel."},
                {"role": "user", "content": "Thanks"},
            ],
            "temperature": 0.5,
            "stop": ["x"],
        },
        {
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": [WEATHER_TOOL, CLOCK_TOOL],
            "tool_choice": "required",
        },
        {"messages": [{"role": "user", "content": "A person"}], "response_format": PERSON_FORMAT},
    ],
)
def test_the_adapters_requests_are_accepted(request_body: dict[str, Any]) -> None:
    converse(to_converse_request(validate_chat({"model": "b", **request_body})))


def test_titan_embeddings() -> None:
    v2 = wire.render_invoke("amazon.titan-embed-text-v2:0", {"inputText": "hello", "dimensions": 256})
    assert len(v2["embedding"]) == 256 and v2["embeddingsByType"]["float"] == v2["embedding"]
    assert v2["inputTextTokenCount"] == 2
    assert len(wire.render_invoke("amazon.titan-embed-text-v1", {"inputText": "hi"})["embedding"]) == 1536
    for model_id, body, says in (
        ("amazon.titan-embed-text-v1", {"inputText": "x", "dimensions": 256}, "extraneous key [dimensions]"),
        ("amazon.titan-embed-text-v2:0", {"inputText": "x", "dimensions": 100}, "not a valid enum value"),
        ("amazon.titan-embed-text-v2:0", {"inputText": ""}, "minLength"),
        (MODEL_ID, {"inputText": "x"}, "model identifier is invalid"),
    ):
        with pytest.raises(MockValidationError) as info:
            wire.render_invoke(model_id, body)
        assert says in info.value.body["message"]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, "ThrottlingException"),
        (503, "ServiceUnavailableException"),
        (500, "InternalServerException"),
        (424, "ModelErrorException"),
        (403, "AccessDeniedException"),
        (502, "InternalServerException"),
    ],
)
def test_fault_bodies_and_error_type_headers(status: int, error_type: str) -> None:
    dialect = wire.BedrockDialect()
    body = dialect.fault_body(status)
    assert orjson.loads(orjson.dumps(body)).keys() == {"message"}
    assert dialect.error_headers(status, body)["x-amzn-ErrorType"].partition(":")[0] == error_type
