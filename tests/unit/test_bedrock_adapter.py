"""OpenAI <-> Bedrock Converse translation, with botocore's service model as the oracle.

Every request body built here is checked against botocore's own `bedrock-runtime` model:
`ParamValidator` (required members, unknown keys, types, tagged unions, lengths) plus enums and
patterns, which the validator leaves out. Converse response fixtures and stream events are checked
against the output shapes the same way, so they are real shapes; every translated response and
chunk must parse with the `openai` SDK's models with no unknown fields.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.model import Shape
from botocore.validate import ParamValidator

from aimm_gateway.canonical import validate_chat, validate_embeddings
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.bedrock_translate import (
    ConverseStreamTranslator,
    bedrock_error,
    converse_usage,
    from_converse_response,
    from_titan_responses,
    model_path,
    stream_exception,
    titan_inputs,
    titan_request,
    to_converse_request,
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

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CLOCK_TOOL: dict[str, Any] = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
PERSON_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}


# ---------------------------------------------------------------------------------------------
# Oracles: botocore's bedrock-runtime service model

SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
_VALIDATOR = ParamValidator()


def _blobs_to_bytes(body: dict[str, Any]) -> dict[str, Any]:
    """JSON carries blobs base64-encoded; botocore's params take bytes (images here)."""
    out = copy.deepcopy(body)
    for message in out.get("messages", ()):
        for block in message["content"]:
            source = (block.get("image") or {}).get("source") or {}
            if "bytes" in source:
                source["bytes"] = base64.b64decode(source["bytes"], validate=True)
    return out


def _shape_problems(value: Any, shape: Shape, path: str) -> list[str]:
    """Enums and patterns, which ParamValidator does not check. Documents are free-form."""
    if shape.metadata.get("document"):
        return []
    if shape.type_name == "structure" and isinstance(value, dict):
        return [
            p
            for k, v in value.items()
            if k in shape.members
            for p in _shape_problems(v, shape.members[k], f"{path}.{k}")
        ]
    if shape.type_name == "list" and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _shape_problems(v, shape.member, f"{path}[{i}]")]
    if shape.type_name == "string" and isinstance(value, str):
        enum = shape.enum
        if enum and value not in enum:
            return [f"{path}: {value!r} is not one of {enum}"]
        pattern = shape.metadata.get("pattern")
        if (
            pattern
            and shape.name not in ("ConversationalModelId", "InvokeModelIdentifier")
            and not re.fullmatch(pattern, value)
        ):
            return [f"{path}: {value!r} does not match {pattern}"]
    return []


def assert_shape(params: dict[str, Any], shape: Shape) -> None:
    report = _VALIDATOR.validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    problems = _shape_problems(params, shape, shape.name)
    assert not problems, problems


def assert_converse_request(body: dict[str, Any], operation: str = "Converse", model_id: str = MODEL_ID) -> None:
    """The body (as sent, JSON) is what botocore would accept for the operation."""
    orjson.dumps(body)
    assert_shape({"modelId": model_id, **_blobs_to_bytes(body)}, SERVICE.operation_model(operation).input_shape)


def assert_converse_response(data: dict[str, Any]) -> None:
    assert_shape(data, SERVICE.operation_model("Converse").output_shape)


def assert_stream_event(event: dict[str, Any]) -> None:
    ((name, payload),) = event.items()
    stream_shape = SERVICE.operation_model("ConverseStream").output_shape.members["stream"]
    assert_shape(payload, stream_shape.members[name])


# ---------------------------------------------------------------------------------------------
# Helpers


def build(body: dict[str, Any], operation: str = "Converse") -> dict[str, Any]:
    out = to_converse_request(validate_chat({"model": "b", **body}))
    assert_converse_request(out, operation)
    return out


def rejects(body: dict[str, Any]) -> InvalidRequest:
    return rejected(to_converse_request, {"model": "b", **body})


def converse_response(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    data = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 25, "outputTokens": 12, "totalTokens": 37, **usage},
        "metrics": {"latencyMs": 321},
    }
    assert_converse_response(data)  # the fixture is a real Converse response
    return data


def stream_events(data: dict[str, Any], piece: int = 7) -> list[dict[str, Any]]:
    """The ConverseStream events Bedrock sends for `data`: text and tool input split into pieces."""
    events: list[dict[str, Any]] = [{"messageStart": {"role": "assistant"}}]
    for index, block in enumerate(data["output"]["message"]["content"]):
        if "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append({"contentBlockStart": {"contentBlockIndex": index, "start": start}})
            full, key = orjson.dumps(use["input"]).decode(), "toolUse"
        elif "text" in block:
            full, key = block["text"], "text"
        else:
            full, key = block["reasoningContent"]["reasoningText"]["text"], "reasoningContent"
        for at in range(0, len(full), piece):
            part = full[at : at + piece]
            delta = (
                {"toolUse": {"input": part}}
                if key == "toolUse"
                else {key: {"text": part}}
                if key != "text"
                else {"text": part}
            )
            events.append({"contentBlockDelta": {"contentBlockIndex": index, "delta": delta}})
        events.append({"contentBlockStop": {"contentBlockIndex": index}})
    events.append({"messageStop": {"stopReason": data["stopReason"]}})
    events.append({"metadata": {"usage": data["usage"], "metrics": data["metrics"]}})
    for event in events:
        assert_stream_event(event)
    return events


def translate(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = ConverseStreamTranslator(MODEL_ID, request_id="req-1")
    chunks = [c for event in events for name, payload in event.items() for c in translator.feed(name, payload)]
    assert translator.done and translator.stopped
    return [*chunks, translator.final_usage_chunk()]


# ---------------------------------------------------------------------------------------------
# The oracle itself must be able to fail


def test_the_request_oracle_rejects_what_bedrock_rejects() -> None:
    good = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert_converse_request(good)
    for bad in (
        {"messages": [{"role": "tool", "content": [{"text": "hi"}]}]},  # enum
        {"messages": [{"role": "user", "content": [{"text": "hi", "image": {}}]}]},  # union: two members
        {**good, "maxTokens": 5},  # unknown key at the top
        {**good, "inferenceConfig": {"temperature": "hot"}},  # type
        {**good, "toolConfig": {"tools": []}},  # length
        {
            "messages": [
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "a b", "name": "x", "input": {}}}]}
            ]
        },  # pattern
    ):
        with pytest.raises(AssertionError):
            assert_converse_request(bad)


# ---------------------------------------------------------------------------------------------
# Request translation


def test_minimal_request_has_only_messages() -> None:
    assert build({"messages": [user("Hi")]}) == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}


def test_model_id_is_one_path_segment_with_arns_escaped() -> None:
    assert model_path(MODEL_ID, "converse") == "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert model_path(arn, "converse-stream") == (
        "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1:0"
        "/converse-stream"
    )


def test_system_and_developer_become_system_blocks_and_same_role_turns_merge() -> None:
    out = build(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                user("one"),
                user("two"),
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "  "},  # blank: dropped, Converse rejects blank text
                user("three"),
            ]
        }
    )
    assert out["system"] == [{"text": "Be brief."}, {"text": "Answer in French."}]
    assert out["messages"] == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
        {"role": "assistant", "content": [{"text": "a"}]},
        {"role": "user", "content": [{"text": "three"}]},
    ]


def test_inference_config_maps_sampling_and_stop() -> None:
    out = build(
        {"messages": [user("Hi")], "max_completion_tokens": 77, "temperature": 0.2, "top_p": 0.9, "stop": "END"}
    )
    assert out["inferenceConfig"] == {"maxTokens": 77, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}


def test_prefill_is_trimmed() -> None:
    out = build({"messages": [user("Hi"), {"role": "assistant", "content": "Sure: "}]})
    assert out["messages"][-1] == {"role": "assistant", "content": [{"text": "Sure:"}]}


def test_data_url_image_becomes_bytes_and_s3_a_location() -> None:
    out = build(
        {
            "messages": [
                user(
                    [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                        {"type": "image_url", "image_url": {"url": "s3://bucket/cat.JPG"}},
                    ]
                )
            ]
        }
    )
    assert out["messages"][0]["content"][1:] == [
        {"image": {"format": "png", "source": {"bytes": PNG_B64}}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.JPG"}}}},
    ]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://img.test/cat.png", "does not fetch image URLs"),
        ("http://img.test/cat.png", "base64 data: URL"),
        ("data:image/bmp;base64,AAAA", "image/bmp"),
        ("data:image/png,raw", "base64-encoded"),
        ("s3://bucket/cat", "extension"),
        ("ftp://img.test/cat.png", "data: or s3://"),
    ],
)
def test_unusable_images_are_clear_400s(url: str, says: str) -> None:
    err = rejects({"messages": [user([{"type": "image_url", "image_url": {"url": url}}])]})
    assert says in err.message
    assert err.param == "messages[0].content[0]"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 1.5}, "temperature"),
        ({"logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [WEATHER_TOOL], "parallel_tool_calls": False}, "parallel_tool_calls"),
    ],
)
def test_what_converse_cannot_do_is_a_400_naming_the_field(extra: dict[str, Any], param: str) -> None:
    assert rejects({"messages": [user("Hi")], **extra}).param == param


def test_tools_and_choices_map_to_tool_config() -> None:
    body = {"messages": [user("Weather?")], "tools": [WEATHER_TOOL, CLOCK_TOOL]}
    out = build(body)
    assert out["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                    "description": "Weather for a city",
                }
            },
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}},
        ]
    }
    assert build({**body, "tool_choice": "auto"})["toolConfig"]["toolChoice"] == {"auto": {}}
    assert build({**body, "tool_choice": "required"})["toolConfig"]["toolChoice"] == {"any": {}}
    named = {"type": "function", "function": {"name": "get_time"}}
    assert build({**body, "tool_choice": named})["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}


def _tool_history(tool_choice: str | None) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    body: dict[str, Any] = {
        "messages": [
            user("Weather in Paris?"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ],
        "tools": [WEATHER_TOOL],
    }
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    return body


def test_tool_history_becomes_tool_use_and_tool_result_blocks() -> None:
    out = build(_tool_history(None))
    assert out["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}],
        },
        {"role": "user", "content": [{"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}}]},
    ]
    assert "toolConfig" in out  # Converse requires it whenever toolUse/toolResult blocks appear


def test_tool_choice_none_sends_tool_history_as_text_without_tool_config() -> None:
    out = build(_tool_history("none"))
    assert "toolConfig" not in out
    assert out["messages"][1:] == [
        {"role": "assistant", "content": [{"text": '[tool call call_1: get_weather({"city":"Paris"})]'}]},
        {"role": "user", "content": [{"text": "[result of tool call call_1: 18C]"}]},
    ]


def test_foreign_tool_ids_are_rewritten_consistently() -> None:
    body = _tool_history(None)
    body["messages"][1]["tool_calls"][0]["id"] = "call/1 x"
    body["messages"][2]["tool_call_id"] = "call/1 x"
    out = build(body)
    assert out["messages"][1]["content"][0]["toolUse"]["toolUseId"] == "call_1_x"
    assert out["messages"][2]["content"][0]["toolResult"]["toolUseId"] == "call_1_x"


def test_parallel_tool_results_merge_into_one_user_turn() -> None:
    calls = [
        {"id": f"call_{k}", "type": "function", "function": {"name": n, "arguments": "{}"}}
        for k, n in enumerate(("get_weather", "get_time"))
    ]
    out = build(
        {
            "messages": [
                user("Weather and time?"),
                {"role": "assistant", "content": "Let me check.", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_0", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
            ],
            "tools": [WEATHER_TOOL, CLOCK_TOOL],
        }
    )
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"][0] == {"text": "Let me check."}
    assert [b["toolResult"]["toolUseId"] for b in out["messages"][2]["content"]] == ["call_0", "call_1"]


def test_invalid_tool_arguments_are_a_400() -> None:
    body = _tool_history(None)
    body["messages"][1]["tool_calls"][0]["function"]["arguments"] = "[1]"
    assert rejects(body).param == "messages[1].tool_calls[0].function.arguments"


def test_json_schema_is_structured_output_with_the_schema_as_a_string() -> None:
    out = build({"messages": [user("Invent a person")], "response_format": PERSON_FORMAT})
    definition = out["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert out["outputConfig"]["textFormat"]["type"] == "json_schema"
    assert definition["name"] == "person"
    assert orjson.loads(definition["schema"]) == PERSON_FORMAT["json_schema"]["schema"]


def test_stream_request_is_the_same_body() -> None:
    body = {"messages": [user("Hi")], "tools": [WEATHER_TOOL], "stream": True}
    assert build(body, "ConverseStream") == build({k: v for k, v in body.items() if k != "stream"})


# ---------------------------------------------------------------------------------------------
# Response translation


def test_text_response() -> None:
    data = converse_response([{"text": "Hello"}, {"text": " world"}], cacheReadInputTokens=5, cacheWriteInputTokens=3)
    out = from_converse_response(data, MODEL_ID, request_id="abc-123")
    parsed = assert_openai_completion(out)
    assert parsed.id == "chatcmpl-abc-123"
    assert parsed.choices[0].message.content == "Hello world"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (33, 12)  # cache tokens are prompt tokens
    assert parsed.usage.prompt_tokens_details is not None and parsed.usage.prompt_tokens_details.cached_tokens == 5


def test_tool_use_response_and_reasoning_is_left_out() -> None:
    data = converse_response(
        [
            {"reasoningContent": {"reasoningText": {"text": "thinking..."}}},
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}},
        ],
        "tool_use",
    )
    parsed = assert_openai_completion(from_converse_response(data, MODEL_ID))
    message = parsed.choices[0].message
    assert message.content == "Checking."
    calls = [c.model_dump() for c in message.tool_calls or []]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("tooluse_1", "get_weather", '{"city":"Paris"}'),
        ("tooluse_2", "get_time", "{}"),
    ]
    assert parsed.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    out = from_converse_response(converse_response([{"text": "x"}], stop_reason), MODEL_ID)
    assert assert_openai_completion(out).choices[0].finish_reason == finish


def test_malformed_output_is_a_retryable_error() -> None:
    with pytest.raises(UpstreamError) as info:
        from_converse_response(converse_response([{"text": "x"}], "malformed_tool_use"), MODEL_ID)
    assert info.value.retryable and "malformed_tool_use" in info.value.message


def test_usage_without_cache_fields() -> None:
    usage = converse_usage({"inputTokens": 3, "outputTokens": 4, "totalTokens": 7})
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (3, 4, 0)


# ---------------------------------------------------------------------------------------------
# Stream translation


def test_stream_text_reassembles_to_the_plain_answer() -> None:
    data = converse_response([{"text": "Hello there, this is a streamed answer."}])
    chunks = translate(stream_events(data))
    assert_openai_chunks(chunks)
    plain = from_converse_response(data, MODEL_ID)
    streamed = reassemble(chunks)
    assert streamed["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert streamed["finish_reason"] == "stop"
    assert streamed["usage"] == plain["usage"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {c["id"] for c in chunks} == {"chatcmpl-req-1"}


def test_stream_parallel_tool_calls_get_openai_indexes() -> None:
    data = converse_response(
        [
            {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
            {"text": "Checking both."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {"tz": "CET"}}},
        ],
        "tool_use",
    )
    chunks = translate(stream_events(data, piece=4))
    assert_openai_chunks(chunks)
    streamed = reassemble(chunks)
    plain = from_converse_response(data, MODEL_ID)["choices"][0]["message"]
    assert streamed["message"] == {"content": plain["content"], "tool_calls": plain["tool_calls"]}
    assert streamed["finish_reason"] == "tool_calls"
    headers = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or () if "id" in tc]
    assert [h["index"] for h in headers] == [0, 1]


def test_padding_and_unknown_events_are_ignored() -> None:
    translator = ConverseStreamTranslator(MODEL_ID)
    assert translator.feed("contentBlockStop", {"contentBlockIndex": 0, "p": "abc"}) == []
    assert translator.feed("someFutureEvent", {}) == []
    assert translator.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "a"}, "p": "x"})


@pytest.mark.parametrize(
    ("name", "status", "retryable", "kind"),
    [
        ("throttlingException", 429, True, "rate_limited"),
        ("serviceUnavailableException", 503, True, "overloaded"),
        ("modelStreamErrorException", 502, True, "http"),
        ("internalServerException", 502, True, "http"),
        ("modelTimeoutException", 504, True, "timeout"),
        ("validationException", 400, False, "invalid_request"),
        ("somethingNewException", 502, True, "http"),
    ],
)
def test_stream_exceptions_map_like_their_http_twins(name: str, status: int, retryable: bool, kind: str) -> None:
    err = stream_exception("bedrock", name, b'{"message": "boom"}')
    assert (err.status, err.retryable, err.kind) == (status, retryable, kind)
    assert f"{name}: boom" in err.message


def test_error_frames_use_their_header_message() -> None:
    err = stream_exception("bedrock", "InternalFailure", b"", "oops")
    assert (err.status, err.retryable) == (502, True) and "InternalFailure: oops" in err.message


# ---------------------------------------------------------------------------------------------
# HTTP errors


@pytest.mark.parametrize(
    ("status", "error_type", "expect_status", "retryable"),
    [
        (400, "ValidationException", 400, False),
        (404, "ResourceNotFoundException", 404, False),
        (403, "AccessDeniedException", 502, True),
        (408, "ModelTimeoutException", 504, True),
        (424, "ModelErrorException", 502, True),
        (429, "ThrottlingException", 429, True),
        (500, "InternalServerException", 502, True),
        (503, "ServiceUnavailableException", 503, True),
    ],
)
def test_http_errors_keep_bedrocks_name_and_message(
    status: int, error_type: str, expect_status: int, retryable: bool
) -> None:
    headers = {
        "x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "retry-after": "3",
    }
    err = bedrock_error("bedrock", status, headers, b'{"message":"it broke"}')
    assert (err.status, err.retryable) == (expect_status, retryable)
    if status not in (403,):
        assert f"{error_type}: it broke" in err.message
    if status == 429:
        assert err.retry_after_s == 3.0


# ---------------------------------------------------------------------------------------------
# Titan embeddings


def test_titan_embeddings_one_body_per_text_and_base64_output() -> None:
    req = validate_embeddings({"model": "e", "input": ["a", "b"], "dimensions": 256, "encoding_format": "base64"})
    assert [titan_request(t, req) for t in titan_inputs(req)] == [
        {"inputText": "a", "dimensions": 256},
        {"inputText": "b", "dimensions": 256},
    ]
    out = from_titan_responses(
        [{"embedding": [0.5, -0.25], "inputTextTokenCount": 2}, {"embedding": [1.0, 0.0], "inputTextTokenCount": 3}],
        "amazon.titan-embed-text-v2:0",
        "base64",
    )
    assert out["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert base64.b64decode(out["data"][0]["embedding"]) == b"\x00\x00\x00?\x00\x00\x80\xbe"


def test_titan_rejects_token_arrays() -> None:
    with pytest.raises(InvalidRequest, match="token arrays"):
        titan_inputs(validate_embeddings({"model": "e", "input": [[1, 2, 3]]}))
