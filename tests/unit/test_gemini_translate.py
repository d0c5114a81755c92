"""OpenAI <-> Gemini translation, with the official SDKs as the oracle in both directions.

Every request body built here is validated against the `google-genai` SDK's pydantic models by
their camelCase aliases only, with unknown keys forbidden (the SDK models are `extra="forbid"`), and
its schemas against the Gemini API's OpenAPI subset. Every upstream fixture is itself validated as
a `GenerateContentResponse`, and every translated response/chunk as the `openai` SDK's models with
no unknown fields.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import orjson
import pytest
from google.genai import types as genai
from openai.types import CreateEmbeddingResponse
from pydantic import TypeAdapter

from aimm_gateway.canonical import ChatRequest, validate_chat, validate_embeddings
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.gemini_translate import (
    GeminiStreamTranslator,
    embedding_texts,
    from_batch_embed_response,
    from_gemini_response,
    from_vertex_predict_response,
    gemini_error,
    gemini_schema,
    gemini_usage,
    signature_from_id,
    to_batch_embed_request,
    to_gemini_request,
    to_vertex_predict_request,
    tool_call_id,
)
from tests.unit.openai_shapes import PNG_B64, assert_openai_chunks, assert_openai_completion, reassemble

MODEL = ModelConfig(name="gem", provider="gemini", model="gemini-2.5-flash")
GEMINI_3 = ModelConfig(name="gem3", provider="gemini", model="gemini-3-pro-preview")
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
SIGNATURE = base64.b64encode(bytes(range(200, 248))).decode()  # has '+' and '/' once encoded


# ---------------------------------------------------------------------------------------------
# Oracles

_REQUEST_TYPES: dict[str, TypeAdapter[Any]] = {
    "contents": TypeAdapter(list[genai.Content]),
    "systemInstruction": TypeAdapter(genai.Content),
    "tools": TypeAdapter(list[genai.Tool]),
    "toolConfig": TypeAdapter(genai.ToolConfig),
    "generationConfig": TypeAdapter(genai.GenerationConfig),
    "safetySettings": TypeAdapter(list[genai.SafetySetting]),
}
# The Gemini API's Schema (v1beta reference): the SDK's Schema also has Vertex-only keys
# (additionalProperties, $ref, defs), which the Gemini API rejects.
_GEMINI_API_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip


def assert_gemini_request(body: dict[str, Any]) -> None:
    """Each field against the SDK's model by camelCase alias only (snake_case or unknown keys fail),
    bytes as base64 (validated from JSON), schemas within the Gemini API subset; then the whole
    request once more as the SDK's flattened GenerateContentConfig."""
    raw = orjson.dumps(body)
    assert set(body) <= set(_REQUEST_TYPES), sorted(set(body) - set(_REQUEST_TYPES))
    assert body.get("contents"), "contents is required"
    for key, value in orjson.loads(raw).items():
        _REQUEST_TYPES[key].validate_json(orjson.dumps(value), by_alias=True, by_name=False)
    for decl in (d for tool in body.get("tools", ()) for d in tool.get("functionDeclarations", ())):
        if "parameters" in decl:
            _assert_api_schema(decl["parameters"], f"{decl['name']}.parameters")
    config = body.get("generationConfig", {})
    if "responseSchema" in config:
        _assert_api_schema(config["responseSchema"], "responseSchema")
    flat = {**config, **{k: v for k, v in body.items() if k not in ("contents", "generationConfig")}}
    genai.GenerateContentConfig.model_validate_json(orjson.dumps(flat), by_alias=True, by_name=False)


def _assert_api_schema(schema: dict[str, Any], path: str) -> None:
    unknown = set(schema) - _GEMINI_API_SCHEMA_KEYS
    assert not unknown, f"{path}: not in the Gemini API's Schema: {sorted(unknown)}"
    assert schema.get("type") or schema.get("anyOf"), f"{path}: type is required"
    if schema.get("type") == "OBJECT":
        assert schema.get("properties"), f"{path}: Gemini rejects OBJECT without properties"
        assert set(schema.get("required", ())) <= set(schema["properties"]), f"{path}: required names unknown"
    if schema.get("type") == "ARRAY":
        assert "items" in schema, f"{path}: Gemini rejects ARRAY without items"
    if "enum" in schema:
        assert schema["type"] == "STRING", f"{path}: Gemini enums are strings only"
    for name, sub in schema.get("properties", {}).items():
        _assert_api_schema(sub, f"{path}.{name}")
    if "items" in schema:
        _assert_api_schema(schema["items"], f"{path}[]")
    for k, sub in enumerate(schema.get("anyOf", ())):
        _assert_api_schema(sub, f"{path}.anyOf[{k}]")


def gemini_response(fixture: dict[str, Any]) -> dict[str, Any]:
    """The fixture is a real GenerateContentResponse (camelCase, no unknown keys, base64 bytes)."""
    genai.GenerateContentResponse.model_validate_json(orjson.dumps(fixture), by_alias=True, by_name=False)
    return fixture


def request(body: dict[str, Any], model: ModelConfig = MODEL) -> dict[str, Any]:
    out = to_gemini_request(validate_chat({"model": "gem", **body}), model)
    assert_gemini_request(out)
    return out


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def text_response(text: str, finish: str = "STOP", **usage: int) -> dict[str, Any]:
    return gemini_response(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish, "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15, **usage},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp123",
        }
    )


def call_response(*calls: tuple[str, dict[str, Any]], signature: str | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for k, (name, args) in enumerate(calls):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if k == 0 and signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return gemini_response(
        {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 8, "totalTokenCount": 28},
            "responseId": "resp456",
        }
    )


# ---------------------------------------------------------------------------------------------
# Requests


def test_system_and_user_messages() -> None:
    body = request({"messages": [{"role": "system", "content": "Be brief."}, user("Hi")]})
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    }


def test_developer_and_midway_system_text_joins_the_system_instruction() -> None:
    body = request({"messages": [{"role": "developer", "content": "A"}, user("q"), {"role": "system", "content": "B"}]})
    assert body["systemInstruction"] == {"parts": [{"text": "A"}, {"text": "B"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "q"}]}]


def test_generation_config_maps_every_sampling_field() -> None:
    body = request(
        {
            "messages": [user("x")],
            "temperature": 1.5,
            "top_p": 0.9,
            "max_tokens": 50,
            "max_completion_tokens": 70,
            "stop": ["END", "STOP"],
            "n": 3,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
        }
    )
    assert body["generationConfig"] == {
        "temperature": 1.5,
        "topP": 0.9,
        "maxOutputTokens": 70,  # max_completion_tokens wins, as in OpenAI
        "stopSequences": ["END", "STOP"],
        "candidateCount": 3,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }


def test_single_stop_string_and_n_1() -> None:
    body = request({"messages": [user("x")], "stop": "END", "n": 1})
    assert body["generationConfig"] == {"stopSequences": ["END"]}


def test_consecutive_turns_merge_and_assistant_becomes_model() -> None:
    body = request(
        {
            "messages": [
                user("one"),
                user("two"),
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": ""},
                user("four"),
            ]
        }
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}]},
        {"role": "user", "parts": [{"text": "four"}]},
    ]


def test_images_data_url_and_http_url() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?size=2", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/render"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/dog.png"}},
    ]
    parts = request({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?size=2"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/dog.png"}},
    ]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [("data:image/png,rawbytes", "base64"), ("ftp://example.com/a.png", r"http\(s\), gs:// or data:")],
)
def test_bad_image_urls_are_400(url: str, fragment: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(InvalidRequest, match=fragment) as err:
        request({"messages": [{"role": "user", "content": content}]})
    assert err.value.param == "messages[0].content[0].image_url.url"


def test_audio_and_file_parts_become_inline_data() -> None:
    content = [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg==", "filename": "a.pdf"}},
    ]
    parts = request({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}},
    ]


def test_file_ids_are_400() -> None:
    content = [{"type": "file", "file": {"file_id": "file-abc"}}]
    with pytest.raises(InvalidRequest, match="file_data"):
        request({"messages": [{"role": "user", "content": content}]})


def test_empty_user_content_is_400() -> None:
    with pytest.raises(InvalidRequest, match="empty") as err:
        request({"messages": [user("")]})
    assert err.value.param == "messages[0].content"


def _tool_history(*results: tuple[str, str]) -> list[dict[str, Any]]:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "toolu_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    tool_msgs = [{"role": "tool", "tool_call_id": cid, "content": text} for cid, text in results]
    return [user("Weather and time?"), {"role": "assistant", "content": None, "tool_calls": calls}, *tool_msgs]


def test_tool_calls_and_results_round_trip_by_function_name() -> None:
    messages = _tool_history(("toolu_b", "12:00"), ("call_a", '{"temp": 21, "sky": "clear"}'))
    body = request({"messages": messages, "tools": [WEATHER_TOOL]})
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ],
    }
    # Both results in one user turn (Gemini counts responses against the calls of the turn before),
    # each under the name recovered from its call id; a JSON object result goes as is.
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
        ],
    }


def test_tool_result_for_unknown_call_id_is_400() -> None:
    messages = [user("x"), {"role": "tool", "tool_call_id": "call_missing", "content": "42"}]
    with pytest.raises(InvalidRequest, match="call_missing") as err:
        request({"messages": messages})
    assert err.value.param == "messages[1].tool_call_id"


@pytest.mark.parametrize(("arguments", "fragment"), [("{nope", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_bad_tool_call_arguments_are_400(arguments: str, fragment: str) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    messages = [user("x"), {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(InvalidRequest, match=fragment) as err:
        request({"messages": messages})
    assert err.value.param == "messages[1].tool_calls[0].function.arguments"


def test_thought_signature_travels_inside_the_tool_call_id() -> None:
    signed = tool_call_id("r", 0, 0, "get_weather", "{}", SIGNATURE)
    assert signed.startswith("call_") and all(c.isalnum() or c in "_-" for c in signed)
    assert signature_from_id(signed) == SIGNATURE
    assert signature_from_id(tool_call_id("r", 0, 0, "get_weather", "{}")) is None
    assert signature_from_id("call_abc") is None
    calls = [{"id": signed, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    messages = [user("x"), {"role": "assistant", "tool_calls": calls}, {"role": "tool", "tool_call_id": signed,
                "content": "sunny"}]  # fmt: skip
    part = request({"messages": messages})["contents"][1]["parts"][0]
    assert part == {"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": SIGNATURE}


def test_tools_and_tool_choice() -> None:
    clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    body = request({"messages": [user("x")], "tools": [WEATHER_TOOL, clock]})
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                },
                {"name": "get_time"},  # no properties: Gemini rejects an empty OBJECT, so no parameters
            ]
        }
    ]
    assert "toolConfig" not in body


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("none", {"mode": "NONE"}),
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_maps_to_function_calling_config(choice: Any, config: dict[str, Any]) -> None:
    body = request({"messages": [user("x")], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_free_form_parameters_fall_back_to_json_schema() -> None:
    params = {"type": "object", "properties": {"filters": {"type": "object"}}, "additionalProperties": False}
    tool = {"type": "function", "function": {"name": "search", "parameters": params}}
    decl = request({"messages": [user("x")], "tools": [tool]})["tools"][0]["functionDeclarations"][0]
    assert decl == {"name": "search", "parametersJsonSchema": params}


def test_non_object_parameters_are_400() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}
    with pytest.raises(InvalidRequest, match="JSON object schema") as err:
        request({"messages": [user("x")], "tools": [tool]})
    assert err.value.param == "tools[0].function.parameters"


# ---------------------------------------------------------------------------------------------
# Schema conversion


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": ["string", "null"], "description": "d"}, {"type": "STRING", "nullable": True, "description": "d"}),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "INTEGER", "nullable": True}),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}),
        ({"const": "fixed"}, {"type": "STRING", "enum": ["fixed"], "format": "enum"}),
        ({"type": "string", "enum": ["a", "b"]}, {"type": "STRING", "enum": ["a", "b"], "format": "enum"}),
        ({"type": "integer", "enum": [1, 2]}, {"type": "INTEGER"}),  # Gemini enums are strings only
        ({"type": "string", "format": "email"}, {"type": "STRING"}),
        ({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}),
        (
            {"type": "integer", "minimum": 1, "maximum": 9, "$comment": "x"},
            {"type": "INTEGER", "minimum": 1, "maximum": 9},
        ),
        (
            {"type": "array", "items": {"type": "number"}, "minItems": 1, "uniqueItems": True},
            {"type": "ARRAY", "items": {"type": "NUMBER"}, "minItems": 1},
        ),
        (
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"p": {"$ref": "#/$defs/P"}},
                "required": ["p", "ghost"],
                "additionalProperties": False,
                "$defs": {"P": {"type": "object", "properties": {"n": {"type": "string"}}, "title": "P"}},
            },
            {
                "type": "OBJECT",
                "properties": {"p": {"type": "OBJECT", "properties": {"n": {"type": "STRING"}}, "title": "P"}},
                "required": ["p"],
            },
        ),
        ({"allOf": [{"type": "boolean"}], "description": "flag"}, {"type": "BOOLEAN", "description": "flag"}),
    ],
)
def test_json_schema_to_gemini_schema(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    converted = gemini_schema(schema)
    assert converted == expected
    _assert_api_schema(converted, "schema")
    genai.Schema.model_validate_json(orjson.dumps(converted), by_alias=True, by_name=False)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object"},  # free-form object
        {"type": "object", "properties": {"meta": {"type": "object"}}},
        {"type": "array"},  # no items
        {"description": "anything"},  # no type at all
        {"type": ["string", "integer"]},
        {
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        },
        {"$ref": "#/$defs/Missing"},
    ],
)
def test_schemas_outside_the_openapi_subset_are_none(schema: dict[str, Any]) -> None:
    assert gemini_schema(schema) is None


def test_wide_recursive_schema_ends_at_the_first_deep_path() -> None:
    # Conversion is depth-first and gives up at the first path past the depth limit: linear, not 3**depth.
    node = {"type": "object", "properties": {k: {"$ref": "#/$defs/N"} for k in "abc"}}
    started = time.perf_counter()
    assert gemini_schema({"$ref": "#/$defs/N", "$defs": {"N": node}}) is None
    assert time.perf_counter() - started < 0.5


def test_structured_output_keeps_property_order() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}  # fmt: skip
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    config = request({"messages": [user("x")], "response_format": fmt})["generationConfig"]
    assert config == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}},
            "required": ["name", "age"],
            "propertyOrdering": ["name", "age"],
        },
    }


def test_json_object_and_unexpressible_json_schema() -> None:
    config = request({"messages": [user("x")], "response_format": {"type": "json_object"}})["generationConfig"]
    assert config == {"responseMimeType": "application/json"}
    loose = {"type": "object", "additionalProperties": {"type": "number"}}
    fmt = {"type": "json_schema", "json_schema": {"name": "scores", "schema": loose}}
    config = request({"messages": [user("x")], "response_format": fmt})["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": loose}
    config = request({"messages": [user("x")], "response_format": {"type": "text"}})
    assert "generationConfig" not in config


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        (MODEL, "none", {"thinkingBudget": 0}),
        (MODEL, "low", {"thinkingBudget": 1024}),
        (MODEL, "high", {"thinkingBudget": 24576}),
        (GEMINI_3, "low", {"thinkingLevel": "LOW"}),
        (GEMINI_3, "high", {"thinkingLevel": "HIGH"}),
    ],
)
def test_reasoning_effort(model: ModelConfig, effort: str, thinking: dict[str, Any]) -> None:
    body = request({"messages": [user("x")], "reasoning_effort": effort}, model)
    assert body["generationConfig"]["thinkingConfig"] == thinking


@pytest.mark.parametrize(("model", "effort"), [(GEMINI_3, "none"), (MODEL, "extreme")])
def test_reasoning_effort_gemini_cannot_honour_is_400(model: ModelConfig, effort: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        request({"messages": [user("x")], "reasoning_effort": effort}, model)
    assert err.value.param == "reasoning_effort"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"web_search_options": {}}, "web_search_options"),
    ],
)
def test_features_gemini_lacks_are_400(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        request({"messages": [user("x")], **extra})
    assert err.value.param == param
    assert err.value.status == 400


# ---------------------------------------------------------------------------------------------
# Responses


def test_text_response() -> None:
    completion = from_gemini_response(text_response("Hello!"), "gemini-2.5-flash")
    assert_openai_completion(completion)
    assert completion["id"] == "chatcmpl-resp123"
    assert completion["model"] == "gemini-2.5-flash"
    assert completion["choices"][0]["message"]["content"] == "Hello!"
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["total_tokens"] == 15


def test_tool_call_response_gets_stable_ids_and_tool_calls_finish() -> None:
    resp = call_response(("get_weather", {"city": "Paris"}), ("get_time", {}), signature=SIGNATURE)
    first = from_gemini_response(resp, "m")
    assert_openai_completion(first)
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "get_time", "arguments": "{}"},
    ]
    assert len({c["id"] for c in calls}) == 2
    assert signature_from_id(calls[0]["id"]) == SIGNATURE and signature_from_id(calls[1]["id"]) is None
    again = from_gemini_response(resp, "m")["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in again] == [c["id"] for c in calls]


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    resp = call_response(("get_weather", {"city": "Paris"}), ("get_time", {}))
    calls = from_gemini_response(resp, "m", parallel_tool_calls=False)["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_candidates_become_choices_and_thoughts_are_dropped() -> None:
    resp = gemini_response(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "B"}]}, "finishReason": "MAX_TOKENS", "index": 1},
                {
                    "content": {"role": "model", "parts": [{"text": "thinking...", "thought": True}, {"text": "A"}]},
                    "finishReason": "STOP",
                },
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        }
    )
    completion = from_gemini_response(resp, "m")
    assert_openai_completion(completion)
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in completion["choices"]] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]
    assert completion["id"].startswith("chatcmpl-")  # no responseId: a fresh id


def test_usage_counts_thoughts_as_completion_and_cached_as_prompt_detail() -> None:
    usage = gemini_usage(
        {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "toolUsePromptTokenCount": 5,
            "totalTokenCount": 155,
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (
        105,
        50,
        60,
        30,
    )
    assert usage.total_tokens == 155  # Gemini's own total
    assert gemini_usage(None).total_tokens == 0


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    resp = gemini_response({"candidates": [{"finishReason": reason, "index": 0}]})
    completion = from_gemini_response(resp, "m")
    assert_openai_completion(completion)
    assert completion["choices"][0]["finish_reason"] == expected
    assert completion["choices"][0]["message"]["content"] == ""


def test_safety_stop_with_ratings_is_content_filter() -> None:
    ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
    resp = gemini_response({"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": ratings}]})
    choice = from_gemini_response(resp, "m")["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("content_filter", "")


def test_blocked_prompt_is_an_empty_content_filter_answer() -> None:
    resp = gemini_response(
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        }
    )
    completion = from_gemini_response(resp, "m")
    assert_openai_completion(completion)
    assert len(completion["choices"]) == 1
    assert completion["choices"][0]["finish_reason"] == "content_filter"
    assert completion["choices"][0]["message"]["content"] == ""
    assert completion["usage"]["prompt_tokens"] == 7


# ---------------------------------------------------------------------------------------------
# Streams


def _events(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [gemini_response(e) for e in events]


def _stream(events: list[dict[str, Any]], **kwargs: Any) -> tuple[list[dict[str, Any]], GeminiStreamTranslator]:
    translator = GeminiStreamTranslator("gemini-2.5-flash", **kwargs)
    chunks = [c for e in events for c in translator.feed(e)]
    return chunks, translator


def _text_event(text: str, finish: str | None = None, **usage: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 10, **usage}, "responseId": "resp123"}


def test_text_stream_matches_the_non_streamed_answer() -> None:
    events = _events(
        _text_event("Hel"), _text_event("lo"), _text_event("!", "STOP", candidatesTokenCount=5, totalTokenCount=15)
    )
    chunks, translator = _stream(events)
    assert translator.finished
    chunks.append(translator.final_usage_chunk())
    assert_openai_chunks(chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["Hel", "lo", "!"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 15
    assert {c["id"] for c in chunks} == {"chatcmpl-resp123"}
    whole = from_gemini_response(text_response("Hello!"), "gemini-2.5-flash")
    assert reassemble(chunks)["message"]["content"] == whole["choices"][0]["message"]["content"]


def test_stream_tool_calls_arrive_whole_with_the_same_ids_as_non_streamed() -> None:
    resp = call_response(("get_weather", {"city": "Paris"}), ("get_time", {}), signature=SIGNATURE)
    chunks, translator = _stream([resp])
    chunks.append(translator.final_usage_chunk())
    assert_openai_chunks(chunks)
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and "tool_calls" in
              c["choices"][0]["delta"]]  # fmt: skip
    assert [d["index"] for d in deltas] == [0, 1]
    whole = from_gemini_response(resp, "gemini-2.5-flash")["choices"][0]["message"]["tool_calls"]
    assert [{k: d[k] for k in ("id", "type", "function")} for d in deltas] == whole
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_parallel_tool_calls_false() -> None:
    chunks, _ = _stream([call_response(("a", {}), ("b", {}))], parallel_tool_calls=False)
    names = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] for c in chunks
             if "tool_calls" in c["choices"][0]["delta"]]  # fmt: skip
    assert names == ["a"]


def test_stream_with_two_candidates() -> None:
    event = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "STOP"},
            {"content": {"role": "model", "parts": [{"text": "B"}]}, "finishReason": "STOP", "index": 1},
        ]
    }
    chunks, translator = _stream(_events(event))
    assert translator.finished
    assert_openai_chunks(chunks)
    by_choice = {(c["choices"][0]["index"], c["choices"][0]["delta"].get("content")) for c in chunks}
    assert {(0, "A"), (1, "B")} <= by_choice


def test_stream_blocked_prompt() -> None:
    chunks, translator = _stream(_events({"promptFeedback": {"blockReason": "SAFETY"}}))
    assert translator.finished
    assert_openai_chunks(chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]


def test_stream_without_finish_reason_is_not_finished() -> None:
    _chunks, translator = _stream(_events(_text_event("partial")))
    assert not translator.finished


@pytest.mark.parametrize(
    ("code", "status", "kind", "retryable"),
    [(503, 503, "overloaded", True), (429, 429, "rate_limited", True), (400, 400, "invalid_request", False)],
)
def test_stream_error_event_raises_mapped_error(code: int, status: int, kind: str, retryable: bool) -> None:
    translator = GeminiStreamTranslator("m")
    translator.feed(_text_event("start"))
    with pytest.raises(UpstreamError) as err:
        translator.feed({"error": {"code": code, "message": "boom", "status": "X"}})
    assert (err.value.status, err.value.kind, err.value.retryable) == (status, kind, retryable)
    assert "boom" in err.value.message


# ---------------------------------------------------------------------------------------------
# Errors


def test_retry_info_becomes_retry_after() -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}],
            }
        }
    )
    err = gemini_error("gemini", 429, {}, body)
    assert (err.status, err.retry_after_s, err.headers) == (429, 37.0, {"retry-after": "37"})
    assert "Resource has been exhausted" in err.message
    assert gemini_error("gemini", 429, {"retry-after": "2"}, body).retry_after_s == 2.0  # the header wins


def test_client_errors_keep_googles_message() -> None:
    body = orjson.dumps({"error": {"code": 400, "message": "* contents: bad", "status": "INVALID_ARGUMENT"}})
    err = gemini_error("gemini", 400, {}, body)
    assert (err.status, err.retryable, err.type) == (400, False, "invalid_request_error")
    assert "* contents: bad" in err.message


# ---------------------------------------------------------------------------------------------
# Embeddings


def test_batch_embed_request_and_response() -> None:
    req = validate_embeddings({"model": "emb", "input": ["a", "bb"], "dimensions": 3})
    texts = embedding_texts(req)
    body = to_batch_embed_request(req, "gemini-embedding-001", texts)
    assert body == {
        "requests": [
            {"model": "models/gemini-embedding-001", "outputDimensionality": 3, "content": {"parts": [{"text": t}]}}
            for t in ("a", "bb")
        ]
    }
    data = {"embeddings": [{"values": [0.5, -0.25, 1.0]}, {"values": [0.0, 1.0, 0.0]}]}
    genai.EmbedContentResponse.model_validate(data)
    out = from_batch_embed_response(data, "emb", texts, None)
    CreateEmbeddingResponse.model_validate(out)
    assert out["data"][0]["embedding"] == [0.5, -0.25, 1.0]
    assert out["usage"]["prompt_tokens"] >= 2  # estimated: batchEmbedContents reports no count
    encoded = from_batch_embed_response(data, "emb", texts, "base64")["data"][0]["embedding"]
    assert list(struct.unpack("<3f", base64.b64decode(encoded))) == [0.5, -0.25, 1.0]


def test_token_array_embeddings_are_400() -> None:
    with pytest.raises(InvalidRequest, match="token arrays"):
        embedding_texts(validate_embeddings({"model": "emb", "input": [[1, 2, 3]]}))


def test_vertex_predict_request_and_response() -> None:
    req = validate_embeddings({"model": "emb", "input": "hello", "dimensions": 2})
    assert to_vertex_predict_request(req, ["hello"]) == {
        "instances": [{"content": "hello"}],
        "parameters": {"outputDimensionality": 2},
    }
    data = {"predictions": [{"embeddings": {"statistics": {"truncated": False, "token_count": 4}, "values": [1, 0]}}]}
    out = from_vertex_predict_response(data, "text-embedding-005", None)
    CreateEmbeddingResponse.model_validate(out)
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_request_translation_is_pure_and_reusable() -> None:
    req: ChatRequest = validate_chat({"model": "gem", "messages": [user("x")], "tools": [WEATHER_TOOL]})
    assert to_gemini_request(req, MODEL) == to_gemini_request(req, MODEL)
    assert req.tools is not None and req.tools[0].function.parameters == WEATHER_TOOL["function"]["parameters"]
