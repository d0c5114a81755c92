"""The Gemini / Vertex AI mock wire format, in-process: validation, rendering, token endpoint.

Oracle: every rendered response and stream event must validate as the `google-genai` SDK's
`GenerateContentResponse` (camelCase aliases only, unknown keys forbidden, bytes as base64);
embeddings as its `EmbedContentResponse` (Vertex predict answers through the SDK's own converter).
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from google.auth import crypt, jwt
from google.genai import models as genai_models
from google.genai import types as genai

from aimm_gateway.mock import gemini_wire
from aimm_gateway.mock.engine import MockValidationError, generate
from aimm_gateway.providers.gemini_translate import GeminiStreamTranslator, from_gemini_response
from tests.unit.openai_shapes import assert_openai_chunks, assert_openai_completion, reassemble
from tests.unit.test_gemini_translate import WEATHER_TOOL, request
from tests.unit.test_vertex_provider import service_account_info

MODEL = "gemini-2.5-flash"
TOKEN_URI = "http://127.0.0.1:9/token"


def sdk_response(data: dict[str, Any]) -> genai.GenerateContentResponse:
    return genai.GenerateContentResponse.model_validate_json(orjson.dumps(data), by_alias=True, by_name=False)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def answer(body: dict[str, Any], model: str = MODEL, *, vertex: bool = False) -> dict[str, Any]:
    inp = gemini_wire.parse_request(body, model, vertex=vertex)
    data = gemini_wire.render_response(model, inp, generate(inp), vertex=vertex)
    sdk_response(data)
    return data


def stream(body: dict[str, Any], model: str = MODEL, chunks: int = 4, *, vertex: bool = False) -> list[dict[str, Any]]:
    inp = gemini_wire.parse_request(body, model, vertex=vertex)
    events = list(gemini_wire.render_stream(model, inp, generate(inp), chunks, vertex=vertex))
    for event in events:
        sdk_response(event)
    return events


def rejected(body: Any, model: str = MODEL, *, vertex: bool = False) -> dict[str, Any]:
    with pytest.raises(MockValidationError) as err:
        gemini_wire.parse_request(body, model, vertex=vertex)
    error: dict[str, Any] = err.value.body["error"]
    assert set(error) == {"code", "message", "status"}
    assert (err.value.status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    return error


# ---------------------------------------------------------------------------------------------
# Rendering


def test_text_answer_is_a_real_generate_content_response() -> None:
    data = answer({"contents": [user("Hello there")], "systemInstruction": {"parts": [{"text": "be nice"}]}})
    candidate = data["candidates"][0]
    assert candidate["content"]["parts"][0]["text"] == "Mock reply from gemini-2.5-flash: Hello there"
    assert (candidate["finishReason"], candidate["index"]) == ("STOP", 0)
    usage = data["usageMetadata"]
    assert (
        usage["totalTokenCount"]
        == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )
    assert data["modelVersion"] == MODEL and data["responseId"]


def test_vertex_leaves_out_index_zero_and_adds_create_time() -> None:
    data = answer({"contents": [user("hi")]}, vertex=True)
    assert "index" not in data["candidates"][0] and "createTime" in data


def test_stream_events_reassemble_to_the_same_text() -> None:
    body = {"contents": [user("a fairly long question about streams")]}
    events = stream(body, chunks=5)
    assert len(events) == 5
    text = "".join(p["text"] for e in events for c in e["candidates"] for p in c.get("content", {}).get("parts", []))
    assert text == answer(body)["candidates"][0]["content"]["parts"][0]["text"]
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "candidatesTokenCount" in events[-1]["usageMetadata"]
    assert len({e["responseId"] for e in events}) == 1


def test_function_calls_carry_a_thought_signature_on_thinking_models() -> None:
    decl = request({"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL]})["tools"]
    data = answer({"contents": [user("weather?")], "tools": decl})
    part = data["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"] == {"name": "get_weather", "args": {"city": "mock-city"}}
    assert base64.b64decode(part["thoughtSignature"], validate=True)
    assert (
        "thoughtSignature"
        not in answer({"contents": [user("weather?")], "tools": decl}, "gemini-2.0-flash")["candidates"][0]["content"][
            "parts"
        ][0]
    )


def test_candidate_count_gives_that_many_candidates() -> None:
    data = answer({"contents": [user("hi")], "generationConfig": {"candidateCount": 3}})
    assert [c["index"] for c in data["candidates"]] == [0, 1, 2]
    events = stream({"contents": [user("hi")], "generationConfig": {"candidateCount": 2}})
    assert {c["index"] for e in events for c in e["candidates"]} == {0, 1}


def test_content_filter_marker_is_a_safety_stop_with_ratings() -> None:
    data = answer({"contents": [user("tell me [[content_filter]]")]})
    candidate = data["candidates"][0]
    assert candidate["finishReason"] == "SAFETY" and "content" not in candidate
    assert any(r.get("blocked") for r in candidate["safetyRatings"])
    events = stream({"contents": [user("tell me [[content_filter]]")]})
    assert len(events) == 1 and events[0]["candidates"][0]["finishReason"] == "SAFETY"


def test_blocked_prompt_marker_has_prompt_feedback_and_no_candidates() -> None:
    data = answer({"contents": [user("[[blocked_prompt]]")]})
    assert "candidates" not in data and data["promptFeedback"]["blockReason"] == "SAFETY"
    assert all(e.get("promptFeedback") for e in stream({"contents": [user("[[blocked_prompt]]")]}))


def test_json_schema_answer_conforms() -> None:
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}},
              "required": ["name", "age"]}  # fmt: skip
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    text = answer({"contents": [user("who?")], "generationConfig": config})["candidates"][0]["content"]["parts"][0]
    value = orjson.loads(text["text"])
    assert set(value) == {"name", "age"} and isinstance(value["age"], int)


def test_adapter_reads_what_the_mock_writes() -> None:
    """The two halves agree: mock output through the adapter validates as OpenAI's types."""
    body = request({"messages": [{"role": "user", "content": "hello"}], "tools": [WEATHER_TOOL]})
    completion = from_gemini_response(answer(body), MODEL)
    assert_openai_completion(completion)
    translator = GeminiStreamTranslator(MODEL)
    chunks = [c for e in stream(body) for c in translator.feed(e)]
    assert translator.finished
    chunks.append(translator.final_usage_chunk())
    assert_openai_chunks(chunks)
    streamed = reassemble(chunks)["message"]["tool_calls"]
    whole = completion["choices"][0]["message"]["tool_calls"]
    # Two mock answers have different responseIds, so different call ids; the calls are the same.
    assert [c["function"] for c in streamed] == [c["function"] for c in whole]
    assert all(c["id"].startswith("call_") for c in streamed + whole)


# ---------------------------------------------------------------------------------------------
# Validation, as the real API does it


def _calls_then(responses: list[dict[str, Any]] | None, *, signature: bool = True) -> dict[str, Any]:
    call: dict[str, Any] = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    if signature:
        call["thoughtSignature"] = base64.b64encode(b"sig").decode()
    contents = [user("weather?"), {"role": "model", "parts": [call]}]
    if responses is not None:
        contents.append({"role": "user", "parts": responses})
    return {"contents": contents}


BUDGET_AND_LEVEL = {"thinkingBudget": 0, "thinkingLevel": "LOW"}
SUNNY = {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "contents is not specified"),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role: user, model"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
        ({"contents": [user("")]}, "empty text parameter"),
        ({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]}, "oneof field 'data'"),
        ({"contents": [user("x")], "generation_config": {}}, 'Unknown name "generation_config"'),
        ({"contents": [user("x")], "generationConfig": {"max_output_tokens": 5}}, 'Unknown name "max_output_tokens"'),
        ({"contents": [user("x")], "generationConfig": {"temperature": 2.5}}, "temperature"),
        ({"contents": [user("x")], "generationConfig": {"topP": 1.5}}, "top_p"),
        ({"contents": [user("x")], "generationConfig": {"candidateCount": 9}}, "candidate_count"),
        ({"contents": [user("x")], "generationConfig": {"stopSequences": list("abcdef")}}, "at most 5"),
        ({"contents": [user("x")], "generationConfig": {"responseSchema": {"type": "STRING"}}}, "response_mime_type"),
        (
            {
                "contents": [user("x")],
                "generationConfig": {"thinkingConfig": {"thinkingBudget": 0, "thinkingLevel": "LOW"}},
            },
            "thinking_level",
        ),
        ({"contents": [{"role": "user", "parts": [SUNNY]}]}, "function response turn comes immediately after"),
        (_calls_then([]), "parts must not be empty"),
        (_calls_then([{"text": "no answer"}]), "number of function response parts"),
        (_calls_then([SUNNY, SUNNY]), "number of function response parts"),
        (
            _calls_then([{"functionResponse": {"name": "other", "response": {}}}]),
            "answers no function call of the previous turn",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f"}}]}]},
            "function call turn comes immediately after a user turn",
        ),
        (
            {"contents": [user("x"), {"role": "model", "parts": [SUNNY]}]},
            "function_response parts are only allowed in user turns",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}]}]},
            "inline_data.data",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/gif", "data": "R0lG"}}]}]},
            "Unsupported MIME type",
        ),
    ],
)
def test_request_validation(body: dict[str, Any], fragment: str) -> None:
    assert fragment in rejected(body)["message"]


def _tool(parameters: dict[str, Any], name: str = "f") -> dict[str, Any]:
    return {"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": name, "parameters": parameters}]}]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            _tool({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "additionalProperties": False}),
            'Unknown name "additionalProperties"',
        ),
        (_tool({"type": "OBJECT", "properties": {}}), "should be non-empty for OBJECT type"),
        (_tool({"type": "OBJECT", "properties": {"a": {"type": "INTEGER", "enum": [1]}}}), "only allowed for STRING"),
        (_tool({"type": "OBJECT", "properties": {"a": {"type": "ARRAY"}}}), "items: missing field"),
        (_tool({"type": "OBJECT", "properties": {"a": {"description": "x"}}}), "type: must be specified"),
        (_tool({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["b"]}), "not defined"),
        (_tool({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}, name="1bad"), "Invalid function name"),
        (
            {"contents": [user("x")], "tools": [{"functionDeclarations": [{"name": "f"}, {"name": "f"}]}]},
            "Duplicate function declaration",
        ),
        (
            {
                "contents": [user("x")],
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}},
            },
            "only be set when the Function calling mode is ANY",
        ),
        (
            {
                "contents": [user("x")],
                "tools": [{"functionDeclarations": [{"name": "f"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}},
            },
            "not declared",
        ),
    ],
)
def test_tool_and_schema_validation(body: dict[str, Any], fragment: str) -> None:
    assert fragment in rejected(body)["message"]


def test_gemini_3_wants_the_thought_signature_of_the_current_turn_back() -> None:
    unsigned = _calls_then([SUNNY], signature=False)
    assert "missing a thought_signature" in rejected(unsigned, "gemini-3-pro-preview")["message"]
    gemini_wire.parse_request(_calls_then([SUNNY]), "gemini-3-pro-preview")
    gemini_wire.parse_request(unsigned, MODEL)  # 2.5 does not insist
    # An older turn (before the latest user text) needs no signature.
    older = {"contents": [*unsigned["contents"], {"role": "model", "parts": [{"text": "ok"}]}, user("next")]}
    gemini_wire.parse_request(older, "gemini-3-pro-preview")


def test_vertex_requires_roles() -> None:
    assert "valid role" in rejected({"contents": [{"parts": [{"text": "x"}]}]}, vertex=True)["message"]
    gemini_wire.parse_request({"contents": [{"parts": [{"text": "x"}]}]}, MODEL)  # the Gemini API defaults to user


def test_tool_config_becomes_the_engines_tool_choice() -> None:
    decls = [{"name": "a"}, {"name": "b"}]
    base = {"contents": [user("x")], "tools": [{"functionDeclarations": decls}]}
    none = gemini_wire.parse_request({**base, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}, MODEL)
    assert none.tool_choice == "none"
    named = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["b"]}}
    assert gemini_wire.parse_request({**base, "toolConfig": named}, MODEL).tool_choice == {"name": "b"}


def test_embedding_models_do_not_generate() -> None:
    with pytest.raises(MockValidationError) as err:
        gemini_wire.parse_request({"contents": [user("x")]}, "gemini-embedding-001")
    assert err.value.status == 404 and err.value.body["error"]["status"] == "NOT_FOUND"


# ---------------------------------------------------------------------------------------------
# Embeddings, token counts, models


def test_batch_embeddings() -> None:
    body = {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]}, "outputDimensionality": 8}
            for t in ("a", "b")
        ]
    }
    data = gemini_wire.render_batch_embeddings(body, "gemini-embedding-001")
    parsed = genai.EmbedContentResponse.model_validate(genai_models._EmbedContentResponse_from_mldev(data))
    assert [len(e.values or ()) for e in parsed.embeddings or ()] == [8, 8]
    bad = {"requests": [{**body["requests"][0], "model": "models/other"}]}
    with pytest.raises(MockValidationError, match="the model of the batch"):
        gemini_wire.render_batch_embeddings(bad, "gemini-embedding-001")
    with pytest.raises(MockValidationError) as err:
        gemini_wire.render_batch_embeddings(body, MODEL)
    assert err.value.status == 404


def test_vertex_predict_embeddings_parse_with_the_sdks_converter() -> None:
    data = gemini_wire.render_vertex_predict(
        {"instances": [{"content": "hello world"}], "parameters": {"outputDimensionality": 4}}, "text-embedding-005"
    )
    parsed = genai.EmbedContentResponse.model_validate(genai_models._EmbedContentResponse_from_vertex(data))
    embedding = (parsed.embeddings or [])[0]
    assert len(embedding.values or ()) == 4 and embedding.statistics and embedding.statistics.token_count == 3


def test_count_tokens_matches_usage() -> None:
    body = {"contents": [user("count these words please")]}
    count = gemini_wire.render_count_tokens(body, MODEL)
    genai.CountTokensResponse.model_validate_json(orjson.dumps(count), by_alias=True, by_name=False)
    assert count["totalTokens"] == answer(body)["usageMetadata"]["promptTokenCount"]
    assert gemini_wire.render_count_tokens({"generateContentRequest": {"model": "models/x", **body}}, MODEL) == count


def test_json_array_framing_is_one_json_array() -> None:
    framing = gemini_wire.JsonArrayFraming()
    events = stream({"contents": [user("hi there")]})
    raw = b"".join(framing.frame(e) for e in events) + (framing.done_frame or b"")
    assert orjson.loads(raw) == events
    cut = gemini_wire.JsonArrayFraming()
    assert orjson.loads(cut.frame(events[0]) + cut.error_frame())[-1]["error"]["code"] == 503


def test_anthropic_on_vertex_body_rules() -> None:
    good = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    assert gemini_wire.anthropic_body(good, "claude")["model"] == "claude"
    for bad, fragment in (
        ({**good, "anthropic_version": "bedrock-2023-05-31"}, "anthropic_version"),
        ({k: v for k, v in good.items() if k != "anthropic_version"}, "anthropic_version"),
        ({**good, "model": "claude"}, "model: Extra inputs"),
    ):
        with pytest.raises(MockValidationError, match=fragment) as err:
            gemini_wire.anthropic_body(bad, "claude")
        assert err.value.body["error"]["type"] == "invalid_request_error"  # Anthropic's shape


# ---------------------------------------------------------------------------------------------
# Vertex token endpoint


def _assertion(info: dict[str, Any], now: float, **claims: Any) -> str:
    signer = crypt.RSASigner.from_service_account_info(info)
    payload = {
        "iss": info["client_email"],
        "aud": info["token_uri"],
        "scope": gemini_wire.CLOUD_PLATFORM_SCOPE,
        "iat": int(now),
        "exp": int(now) + 3600,
        **claims,
    }
    return jwt.encode(signer, payload).decode()


def _form(assertion: str, grant: str = gemini_wire.JWT_BEARER_GRANT) -> bytes:
    return urlencode({"grant_type": grant, "assertion": assertion}).encode()


def test_token_endpoint_issues_tokens_the_api_accepts() -> None:
    info, public_pem = service_account_info(TOKEN_URI)
    now = time.time()
    auth = gemini_wire.VertexAuth(keys={info["private_key_id"]: public_pem})
    status, body = gemini_wire.token_response(_form(_assertion(info, now)), auth, now)
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    gemini_wire.check_bearer(f"Bearer {body['access_token']}", now)
    with pytest.raises(MockValidationError) as err:
        gemini_wire.check_bearer(f"Bearer {body['access_token']}", now + 3601)  # expired
    assert (err.value.status, err.value.body["error"]["status"]) == (401, "UNAUTHENTICATED")
    token = body["access_token"]
    tampered = token[:-1] + ("1" if token[-1] == "0" else "0")
    for bad in (None, "Bearer ", "Bearer ya29.forged", f"Bearer {tampered}", f"Basic {token}"):
        with pytest.raises(MockValidationError):
            gemini_wire.check_bearer(bad, now)


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"aud": "https://example.com/elsewhere"}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "invalid_scope"),
        ({"exp": 1}, "invalid_grant"),
        ({"exp": 10**10}, "invalid_grant"),  # longer than an hour
        ({"iss": "not-an-email"}, "invalid_grant"),
    ],
)
def test_token_endpoint_rejects_bad_claims(claims: dict[str, Any], error: str) -> None:
    info, _ = service_account_info(TOKEN_URI)
    now = time.time()
    status, body = gemini_wire.token_response(_form(_assertion(info, now, **claims)), gemini_wire.VertexAuth(), now)
    assert (status, body["error"]) == (400, error)


def test_token_endpoint_checks_grant_and_signature() -> None:
    info, public_pem = service_account_info(TOKEN_URI)
    now = time.time()
    assertion = _assertion(info, now)
    status, body = gemini_wire.token_response(_form(assertion, "client_credentials"), gemini_wire.VertexAuth(), now)
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    status, _ = gemini_wire.token_response(_form("a.b"), gemini_wire.VertexAuth(), now)
    assert status == 400
    # With the key registered, a tampered payload fails the RS256 signature check.
    header, payload, signature = assertion.split(".")
    forged_claims = {**orjson.loads(base64.urlsafe_b64decode(payload + "==")), "iss": "evil@p.iam.gserviceaccount.com"}
    forged = base64.urlsafe_b64encode(orjson.dumps(forged_claims)).decode().rstrip("=")
    auth = gemini_wire.VertexAuth(keys={info["private_key_id"]: public_pem})
    status, body = gemini_wire.token_response(_form(f"{header}.{forged}.{signature}"), auth, now)
    assert (status, body["error_description"]) == (400, "Invalid JWT Signature.")
    other_kid = gemini_wire.VertexAuth(keys={"another-key": public_pem})
    assert gemini_wire.token_response(_form(assertion), other_kid, now)[0] == 400
