"""Google Gemini API and Vertex AI wire formats.

Pure functions, usable in-process (no socket) and by the HTTP mock app:

* :func:`parse_request` validates a ``generateContent`` body like the real API (camelCase fields,
  roles user/model, function call/response pairing, Gemini's OpenAPI-subset schemas, sampling
  ranges) and returns a :class:`MockInput` (raises :class:`MockValidationError` in Google's error
  shape ``{"error": {"code", "message", "status"}}``);
* :func:`render_response` / :func:`render_stream` shape an engine output as a
  ``GenerateContentResponse`` / the sequence of partial responses a stream sends;
* :func:`render_batch_embeddings` (Gemini API), :func:`render_vertex_predict` (Vertex AI),
  :func:`render_count_tokens`, :func:`render_models` answer the other routes;
* :func:`anthropic_body` checks an Anthropic-on-Vertex ``rawPredict`` body;
* :func:`token_response` is the OAuth token endpoint (JWT-bearer grant) and :func:`check_bearer`
  accepts only the tokens it issued;
* :class:`GeminiDialect`, :class:`VertexDialect`, :class:`JsonArrayFraming`: the HTTP-level
  differences the mock server needs (auth, error bodies, stream framing).

Markers in the prompt: ``[[content_filter]]`` (engine) ends the answer with finishReason SAFETY;
``[[blocked_prompt]]`` blocks the prompt itself (``promptFeedback.blockReason``, no candidates).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from google.auth import crypt

from . import anthropic_wire
from .engine import (
    MockChoice,
    MockInput,
    MockMessage,
    MockOutput,
    MockTool,
    MockValidationError,
    count_prompt_tokens,
    embed,
    estimate_tokens,
    random_hex,
)
from .openai_wire import IMAGE_TEXT, split_text

if TYPE_CHECKING:
    from starlette.requests import Request

from .wire import bearer_token, for_status, optional_list, sse_data

__all__ = [
    "GEMINI_MODELS",
    "VERTEX_MODELS",
    "GeminiDialect",
    "JsonArrayFraming",
    "VertexAuth",
    "VertexDialect",
    "anthropic_body",
    "check_bearer",
    "error_body",
    "parse_request",
    "render_batch_embeddings",
    "render_count_tokens",
    "render_models",
    "render_response",
    "render_stream",
    "render_vertex_predict",
    "split_target",
    "token_response",
]

GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash", "gemini-3-pro-preview",
                 "gemini-embedding-001", "text-embedding-004")  # fmt: skip
VERTEX_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "claude-sonnet-4-5@20250929", "text-embedding-005")
# The API versions the mock serves: google-genai 3.6 calls v1 (Gemini API) and v1beta1 (Vertex) by default.
API_VERSIONS = ("v1beta", "v1")
VERTEX_API_VERSIONS = ("v1", "v1beta1")
PROMPT_BLOCK_MARKER = "[[blocked_prompt]]"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ANTHROPIC_VERTEX_VERSION = "vertex-2023-10-16"
THOUGHTS_TOKENS = 8  # what the mock's thinking models (2.5, 3) report as thoughtsTokenCount per choice
MAX_STOP_SEQUENCES = 5
MAX_CANDIDATES = 8
MAX_EMBED_BATCH = 100
MAX_PREDICT_INSTANCES = 250

_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_FAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_HARM_CATEGORIES = ("HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_DANGEROUS_CONTENT", "HARM_CATEGORY_HARASSMENT",
                    "HARM_CATEGORY_SEXUALLY_EXPLICIT")  # fmt: skip
_THRESHOLDS = frozenset({"HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
                         "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"})  # fmt: skip

_REQUEST_FIELDS = frozenset({"model", "contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
                             "safetySettings", "cachedContent", "labels"})  # fmt: skip
_CONTENT_FIELDS = frozenset({"role", "parts"})
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
              "codeExecutionResult")  # fmt: skip
_PART_FIELDS = frozenset({*_PART_DATA, "thought", "thoughtSignature", "videoMetadata", "partMetadata",
                          "mediaResolution"})  # fmt: skip
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
_MEDIA_PREFIXES = ("audio/", "video/", "text/")
_TOOL_FIELDS = frozenset({"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution",
                          "urlContext", "retrieval", "enterpriseWebSearch", "googleMaps", "computerUse",
                          "fileSearch"})  # fmt: skip
_FUNCTION_FIELDS = frozenset({"name", "description", "parameters", "parametersJsonSchema", "response",
                              "responseJsonSchema", "behavior"})  # fmt: skip
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_SCHEMA_COPY = ("minItems", "maxItems", "minLength", "maxLength", "minimum", "maximum", "format")
_GENERATION_FIELDS = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "mediaResolution",
})  # fmt: skip
_MIME_TYPES = frozenset({"text/plain", "application/json", "application/xml", "application/yaml", "text/x.enum"})
_THINKING_FIELDS = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
_THINKING_LEVELS = frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH"})
_CALLING_MODES = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_EMBED_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768, "text-embedding-005": 768,
                     "text-multilingual-embedding-002": 768, "embedding-001": 768}  # fmt: skip
_BATCH = "BatchEmbedContentsRequest"
_EMBED_REQUEST_FIELDS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
_TOKEN_MAC_KEY = b"aimm-mock-vertex-token"  # not a secret: mock tokens only need to be recognisable
_TOKEN_PREFIX = "ya29.mock."
_MAX_ASSERTION_LIFETIME_S = 3600
_CLOCK_SKEW_S = 300
_BAD_LIFETIME = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)


# ---------------------------------------------------------------------------------------------
# Errors


def error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status or _STATUS.get(code, "UNKNOWN")}}


def _invalid(message: str) -> MockValidationError:
    return MockValidationError(400, error_body(400, message))


def _field(path: str, problem: str, request: str = "GenerateContentRequest") -> MockValidationError:
    # Google's field errors name the proto path, one "* " line per problem.
    return _invalid(f"* {request}.{path}: {problem}\n")


def _unknown(key: str, at: str) -> MockValidationError:
    where = f" at '{at}'" if at else ""
    return _invalid(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.')


def _bad_value(at: str, value: Any, expected: str) -> MockValidationError:
    shown = orjson.dumps(value).decode()[:60]
    return _invalid(f"Invalid value at '{at}' ({expected}), {shown}")


def invalid_json_error(detail: str) -> MockValidationError:
    return _invalid(f"Invalid JSON payload received. {detail}")


def not_found(message: str) -> MockValidationError:
    return MockValidationError(404, error_body(404, message))


def fault_error_body(status: int) -> dict[str, Any]:
    """Body of an injected failure, as Google sends it for that status."""
    return error_body(status, for_status(_FAULT_MESSAGES, status, "Internal error encountered.", "Request failed."))


def stream_error_event() -> dict[str, Any]:
    """What Gemini sends as a stream element when generation fails after the stream started."""
    return error_body(503, _FAULT_MESSAGES[503])


def split_target(target: str) -> tuple[str, str]:
    """``gemini-2.5-flash:generateContent`` -> (model, method)."""
    model, sep, method = target.rpartition(":")
    if not sep or not model:
        raise not_found(f"Method not found: {target}")
    return model, method


def _object(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_value(at, value, "type.googleapis.com/google.protobuf.Struct")
    return value


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], at: str) -> None:
    for key in obj:
        if key not in allowed:
            raise _unknown(key, at)


def _is_base64(value: Any) -> bool:
    """Proto JSON bytes: standard or URL-safe base64, padding optional."""
    if not isinstance(value, str) or not value:
        return False
    standard = value.replace("-", "+").replace("_", "/")
    try:
        base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error:
        return False
    return True


def _number(value: Any, at: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_value(at, value, "TYPE_FLOAT")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _field(at, f"must be in the range [{low}, {high}]")
    return value


def _integer(value: Any, at: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_value(at, value, "TYPE_INT32")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"in the range [{low}, {high}]"
        raise _field(at, f"must be {bounds}")
    return value


# ---------------------------------------------------------------------------------------------
# generateContent requests


def is_embedding_model(model: str) -> bool:
    return "embedding" in model


def requires_thought_signatures(model: str) -> bool:
    """Gemini 3 rejects function calls of the current turn sent back without their thoughtSignature."""
    return model.startswith("gemini-3")


def is_thinking_model(model: str) -> bool:
    return model.startswith(("gemini-2.5", "gemini-3"))


def parse_request(body: Any, model: str, *, vertex: bool = False) -> MockInput:
    """Validate a ``generateContent`` body like the real API and turn it into engine input."""
    if is_embedding_model(model):
        raise not_found(f"models/{model} is not found for API version v1beta, or is not supported for "
                        "generateContent. Call ListModels to see the list of available models and their "
                        "supported methods.")  # fmt: skip
    body = _object(body, "")
    _check_keys(body, _REQUEST_FIELDS, "")
    system = _parse_system(body.get("systemInstruction"))
    messages = _parse_contents(body.get("contents"), model, vertex=vertex)
    tools = _parse_tools(body.get("tools"))
    choice, tools = _parse_tool_config(body.get("toolConfig"), tools)
    _check_safety_settings(body.get("safetySettings"))
    config = _object(body.get("generationConfig") or {}, "generation_config")
    schema, json_mode = _parse_generation_config(config)
    return MockInput(
        model=model,
        messages=system + messages,
        tools=tools,
        tool_choice=choice,
        max_tokens=config.get("maxOutputTokens"),
        stop=list(config.get("stopSequences") or ()),
        n=config.get("candidateCount") or 1,
        json_mode=json_mode,
        json_schema=schema,
    )


def _parse_system(raw: Any) -> list[MockMessage]:
    if raw is None:
        return []
    content = _object(raw, "system_instruction")
    _check_keys(content, _CONTENT_FIELDS, "system_instruction")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _field("system_instruction.parts", "contents.parts must not be empty.")
    texts = []
    for j, part in enumerate(parts):
        at = f"system_instruction.parts[{j}]"
        _check_part(part, at)
        if "text" not in part:
            raise _field(at, "system instructions may only contain text parts")
        texts.append(part["text"])
    return [MockMessage("system", "\n".join(texts))]


@dataclass(slots=True)
class _Turn:
    role: str
    parts: list[dict[str, Any]]
    calls: list[str]  # function names this (model) turn calls
    responses: list[str]  # function names this (user) turn answers


def _parse_contents(raw: Any, model: str, *, vertex: bool) -> list[MockMessage]:
    if raw is None or raw == []:
        raise _field("contents", "contents is not specified")
    if not isinstance(raw, list):
        raise _bad_value("contents", raw, "a list of Content")
    turns = [_parse_turn(content, f"contents[{i}]", vertex=vertex) for i, content in enumerate(raw)]
    _check_function_turns(turns)
    if requires_thought_signatures(model):
        _check_thought_signatures(turns)
    out: list[MockMessage] = []
    for turn in turns:
        out.extend(_to_mock_messages(turn))
    return out


def _parse_turn(content: Any, at: str, *, vertex: bool) -> _Turn:
    content = _object(content, at)
    _check_keys(content, _CONTENT_FIELDS, at)
    role = content.get("role")
    if role is None and not vertex:
        role = "user"  # the Gemini API takes a role-less single turn as the user's; Vertex does not
    if role not in ("user", "model"):
        raise _invalid("Please use a valid role: user, model.")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _field(f"{at}.parts", "contents.parts must not be empty.")
    for j, part in enumerate(parts):
        _check_part(part, f"{at}.parts[{j}]")
    calls = [p["functionCall"]["name"] for p in parts if "functionCall" in p]
    responses = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
    if role == "user" and calls:
        raise _field(f"{at}.parts", "function_call parts are only allowed in model turns")
    if role == "model" and responses:
        raise _field(f"{at}.parts", "function_response parts are only allowed in user turns")
    return _Turn(role, parts, calls, responses)


def _check_function_turns(turns: list[_Turn]) -> None:
    for i, turn in enumerate(turns):
        previous = turns[i - 1] if i else None
        if turn.calls and (previous is None or previous.role != "user"):
            raise _invalid("Please ensure that function call turn comes immediately after a user turn or after a "
                           "function response turn.")  # fmt: skip
        if previous is not None and previous.calls:
            if turn.role != "user" or len(turn.responses) != len(previous.calls):
                raise _invalid("Please ensure that the number of function response parts is equal to the number "
                               "of function call parts of the function call turn.")  # fmt: skip
            for name in turn.responses:
                if name not in previous.calls:
                    raise _field(f"contents[{i}]", f"function response {name!r} answers no function call of the "
                                                   "previous turn")  # fmt: skip
        elif turn.responses:
            raise _invalid("Please ensure that function response turn comes immediately after a function call turn.")


def _check_thought_signatures(turns: list[_Turn]) -> None:
    # The current turn starts after the last user message that is not only function responses.
    start = max((i for i, t in enumerate(turns) if t.role == "user" and len(t.responses) < len(t.parts)), default=0)
    for turn in turns[start:]:
        for j, part in enumerate(turn.parts):
            if "functionCall" in part:
                if "thoughtSignature" not in part:
                    name = part["functionCall"]["name"]
                    raise _invalid(
                        "Function call is missing a thought_signature in functionCall parts. This is required for "
                        "tools to work correctly, and missing thought_signature may lead to degraded model "
                        f"performance. Additional data, function call `default_api:{name}` , position {j + 1}. "
                        "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                    )
                break  # only the first call of a turn carries (and needs) the signature


def _check_part(part: Any, at: str) -> None:
    part = _object(part, at)
    _check_keys(part, _PART_FIELDS, at)
    data = [key for key in _PART_DATA if key in part]
    if len(data) != 1:
        raise _field(f"{at}.data", "required oneof field 'data' must have one initialized field")
    kind = data[0]
    if kind == "text":
        if not isinstance(part["text"], str):
            raise _bad_value(f"{at}.text", part["text"], "TYPE_STRING")
        if not part["text"]:
            raise _invalid("Unable to submit request because it has an empty text parameter. Add a value to the "
                           "parameter and try again.")  # fmt: skip
    elif kind == "inlineData":
        _check_blob(_object(part[kind], f"{at}.inline_data"), f"{at}.inline_data")
    elif kind == "fileData":
        file = _object(part[kind], f"{at}.file_data")
        _check_keys(file, frozenset({"mimeType", "fileUri", "displayName"}), f"{at}.file_data")
        if not isinstance(file.get("fileUri"), str) or not file["fileUri"]:
            raise _field(f"{at}.file_data.file_uri", "required field is missing")
    elif kind == "functionCall":
        _check_function_call(_object(part[kind], f"{at}.function_call"), f"{at}.function_call")
    elif kind == "functionResponse":
        _check_function_response(_object(part[kind], f"{at}.function_response"), f"{at}.function_response")
    if "thoughtSignature" in part and not _is_base64(part["thoughtSignature"]):
        raise _bad_value(f"{at}.thought_signature", part["thoughtSignature"], "TYPE_BYTES")


def _check_blob(blob: dict[str, Any], at: str) -> None:
    _check_keys(blob, frozenset({"mimeType", "data", "displayName"}), at)
    mime = blob.get("mimeType")
    if not isinstance(mime, str) or not mime:
        raise _field(f"{at}.mime_type", "required field is missing")
    if not (mime in _IMAGE_TYPES or mime.startswith(_MEDIA_PREFIXES) or mime == "application/pdf"):
        raise _invalid(f"Unsupported MIME type: {mime}")
    if not _is_base64(blob.get("data")):
        raise _bad_value(f"{at}.data", blob.get("data"), "TYPE_BYTES")


def _check_function_call(call: dict[str, Any], at: str) -> None:
    _check_keys(call, frozenset({"name", "args", "id"}), at)
    if not isinstance(call.get("name"), str) or not call["name"]:
        raise _field(f"{at}.name", "Name cannot be empty.")
    if "args" in call:
        _object(call["args"], f"{at}.args")


def _check_function_response(resp: dict[str, Any], at: str) -> None:
    _check_keys(resp, frozenset({"name", "response", "id", "willContinue", "scheduling", "parts"}), at)
    if not isinstance(resp.get("name"), str) or not resp["name"]:
        raise _field(f"{at}.name", "Name cannot be empty.")
    if "response" not in resp:
        raise _field(f"{at}.response", "required field is missing")
    _object(resp["response"], f"{at}.response")


def _to_mock_messages(turn: _Turn) -> list[MockMessage]:
    """Function responses become tool results for the engine; other parts are joined as text."""
    role = "assistant" if turn.role == "model" else "user"
    out: list[MockMessage] = []
    texts: list[str] = []
    for part in turn.parts:
        if "functionResponse" in part:
            fr = part["functionResponse"]
            out.append(MockMessage("tool", _response_text(fr["response"]), is_tool_result=True, tool_name=fr["name"]))
        elif "text" in part and not part.get("thought"):
            texts.append(part["text"])
        elif "inlineData" in part or "fileData" in part:
            media = part.get("inlineData") or part.get("fileData") or {}
            texts.append(IMAGE_TEXT if str(media.get("mimeType", "image/")).startswith("image/") else "[file]")
    if texts or not out:
        out.append(MockMessage(role, "\n".join(texts)))
    return out


def _response_text(response: dict[str, Any]) -> str:
    output = response.get("output")
    return output if isinstance(output, str) and len(response) == 1 else orjson.dumps(response).decode()


# ---------------------------------------------------------------------------------------------
# Tools and schemas


def _parse_tools(raw: Any) -> list[MockTool]:
    tools: list[MockTool] = []
    seen: set[str] = set()
    for i, tool in enumerate(optional_list(raw, lambda: _bad_value("tools", raw, "a list of Tool"))):
        at = f"tools[{i}]"
        tool = _object(tool, at)
        _check_keys(tool, _TOOL_FIELDS, at)
        decls = tool.get("functionDeclarations") or []
        if not isinstance(decls, list):
            raise _bad_value(f"{at}.function_declarations", decls, "a list of FunctionDeclaration")
        for k, decl in enumerate(decls):
            parsed = _parse_function(decl, f"{at}.function_declarations[{k}]")
            if parsed.name in seen:
                raise _invalid(f"Duplicate function declaration found: {parsed.name}")
            seen.add(parsed.name)
            tools.append(parsed)
    return tools


def _parse_function(decl: Any, at: str) -> MockTool:
    decl = _object(decl, at)
    _check_keys(decl, _FUNCTION_FIELDS, at)
    name = decl.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
        raise _field(f"{at}.name", "Invalid function name. Must start with a letter or an underscore. Must be "
                     "alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a "
                     "maximum length of 64.")  # fmt: skip
    if "parameters" in decl and "parametersJsonSchema" in decl:
        raise _field(at, "parameters and parameters_json_schema are mutually exclusive")
    if "parameters" in decl:
        return MockTool(name=name, parameters=check_schema(decl["parameters"], f"{at}.parameters"))
    schema = decl.get("parametersJsonSchema")
    if schema is not None:
        return MockTool(name=name, parameters=_object(schema, f"{at}.parameters_json_schema"))
    return MockTool(name=name, parameters={"type": "object", "properties": {}})


def check_schema(schema: Any, at: str, depth: int = 0) -> dict[str, Any]:
    """Validate a Gemini (OpenAPI-subset) Schema; returns its JSON Schema twin for the engine."""
    schema = _object(schema, at)
    if depth > 64:
        raise _field(at, "schema is nested too deeply")
    _check_keys(schema, _SCHEMA_FIELDS, at)
    kind = schema.get("type")
    if kind is None:
        if isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
            return {"anyOf": [check_schema(s, f"{at}.any_of[{n}]", depth + 1) for n, s in enumerate(schema["anyOf"])]}
        raise _field(f"{at}.type", "must be specified")
    if not isinstance(kind, str) or kind.upper() not in _SCHEMA_TYPES:
        raise _bad_value(f"{at}.type", kind, "type.googleapis.com/google.ai.generativelanguage.v1beta.Type")
    kind = kind.upper()
    out: dict[str, Any] = {"type": kind.lower()}
    for key in _SCHEMA_COPY:
        if key in schema:
            out[key] = schema[key]
    if "enum" in schema:
        if kind != "STRING":
            raise _field(f"{at}.enum", "only allowed for STRING type")
        if not isinstance(schema["enum"], list) or not all(isinstance(v, str) for v in schema["enum"]):
            raise _bad_value(f"{at}.enum", schema["enum"], "a list of strings")
        out["enum"] = schema["enum"]
    if kind == "OBJECT":
        out.update(_check_object_schema(schema, at, depth))
    elif kind == "ARRAY":
        if "items" not in schema:
            raise _field(f"{at}.items", "missing field.")
        out["items"] = check_schema(schema["items"], f"{at}.items", depth + 1)
    return out


def _check_object_schema(schema: dict[str, Any], at: str, depth: int) -> dict[str, Any]:
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise _field(f"{at}.properties", "should be non-empty for OBJECT type")
    out: dict[str, Any] = {
        "properties": {k: check_schema(v, f"{at}.properties[{k}]", depth + 1) for k, v in props.items()}
    }
    required = schema.get("required") or []
    for n, name in enumerate(required):
        if name not in props:
            raise _field(f"{at}.required[{n}]", "property is not defined")
    for n, name in enumerate(schema.get("propertyOrdering") or ()):
        if name not in props:
            raise _field(f"{at}.property_ordering[{n}]", "property is not defined")
    if required:
        out["required"] = list(required)
    return out


def _parse_tool_config(raw: Any, tools: list[MockTool]) -> tuple[str | dict[str, str], list[MockTool]]:
    """Gemini's functionCallingConfig as the engine's tool_choice (and the tools it may call)."""
    if raw is None:
        return "auto", tools
    config = _object(raw, "tool_config")
    _check_keys(config, frozenset({"functionCallingConfig", "retrievalConfig"}), "tool_config")
    fcc = _object(config.get("functionCallingConfig") or {}, "tool_config.function_calling_config")
    at = "tool_config.function_calling_config"
    _check_keys(fcc, frozenset({"mode", "allowedFunctionNames", "streamFunctionCallArguments"}), at)
    mode = fcc.get("mode", "AUTO")
    if mode not in _CALLING_MODES:
        raise _bad_value(f"{at}.mode", mode, "type.googleapis.com/google.ai.generativelanguage.v1beta.Mode")
    allowed = fcc.get("allowedFunctionNames")
    if allowed is not None:
        if mode not in ("ANY", "VALIDATED"):
            raise _field(f"{at}.allowed_function_names", "should only be set when the Function calling mode is ANY")
        declared = {t.name for t in tools}
        for n, name in enumerate(allowed):
            if name not in declared:
                raise _field(f"{at}.allowed_function_names[{n}]", f"function {name!r} is not declared in tools")
    if mode == "NONE":
        return "none", tools
    if mode not in ("ANY", "VALIDATED"):
        return "auto", tools
    if allowed and len(allowed) == 1:
        return {"name": allowed[0]}, tools
    return "required", [t for t in tools if not allowed or t.name in allowed]


def _check_safety_settings(raw: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, list):
        raise _bad_value("safety_settings", raw, "a list of SafetySetting")
    for i, setting in enumerate(raw):
        at = f"safety_settings[{i}]"
        setting = _object(setting, at)
        _check_keys(setting, frozenset({"category", "threshold", "method"}), at)
        if not str(setting.get("category", "")).startswith("HARM_CATEGORY_"):
            raise _bad_value(f"{at}.category", setting.get("category"), "HarmCategory")
        if setting.get("threshold") not in _THRESHOLDS:
            raise _bad_value(f"{at}.threshold", setting.get("threshold"), "HarmBlockThreshold")


def _parse_generation_config(config: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """Check the sampling/output fields; returns (structured-output schema, JSON mode)."""
    at = "generation_config"
    _check_keys(config, _GENERATION_FIELDS, at)
    if "temperature" in config:
        _number(config["temperature"], f"{at}.temperature", 0.0, 2.0)
    if "topP" in config:
        _number(config["topP"], f"{at}.top_p", 0.0, 1.0)
    if "topK" in config:
        _integer(config["topK"], f"{at}.top_k", 1)
    if "candidateCount" in config:
        _integer(config["candidateCount"], f"{at}.candidate_count", 1, MAX_CANDIDATES)
    if "maxOutputTokens" in config:
        _integer(config["maxOutputTokens"], f"{at}.max_output_tokens", 1)
    if "seed" in config:
        _integer(config["seed"], f"{at}.seed")
    for key, name in (("presencePenalty", "presence_penalty"), ("frequencyPenalty", "frequency_penalty")):
        if key in config:
            _number(config[key], f"{at}.{name}", -2.0, 2.0)
    _check_stop_sequences(config.get("stopSequences"), at)
    _check_thinking(config.get("thinkingConfig"), at)
    return _response_format(config, at)


def _check_stop_sequences(stops: Any, at: str) -> None:
    if stops is None:
        return
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _bad_value(f"{at}.stop_sequences", stops, "a list of strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise _field(f"{at}.stop_sequences", f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")


def _check_thinking(raw: Any, at: str) -> None:
    if raw is None:
        return
    thinking = _object(raw, f"{at}.thinking_config")
    _check_keys(thinking, _THINKING_FIELDS, f"{at}.thinking_config")
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        raise _invalid("You cannot use both thinking_level and the legacy thinking_budget parameter in the same "
                       "request.")  # fmt: skip
    if "thinkingBudget" in thinking:
        _integer(thinking["thinkingBudget"], f"{at}.thinking_config.thinking_budget", -1)
    level = thinking.get("thinkingLevel")
    if level is not None and str(level).upper() not in _THINKING_LEVELS:
        raise _bad_value(f"{at}.thinking_config.thinking_level", level, "ThinkingLevel")


def _response_format(config: dict[str, Any], at: str) -> tuple[dict[str, Any] | None, bool]:
    mime = config.get("responseMimeType", "text/plain")
    if mime not in _MIME_TYPES:
        raise _field(f"{at}.response_mime_type", f"allowed mimetypes are {', '.join(sorted(_MIME_TYPES))}")
    has_schema = "responseSchema" in config
    if has_schema and "responseJsonSchema" in config:
        raise _field(at, "response_schema and response_json_schema are mutually exclusive")
    if (has_schema or "responseJsonSchema" in config) and mime not in ("application/json", "text/x.enum"):
        raise _field(f"{at}.response_mime_type", "must be application/json or text/x.enum when a response "
                     "schema is set")  # fmt: skip
    json_mode = mime == "application/json"
    if has_schema:
        return check_schema(config["responseSchema"], f"{at}.response_schema"), json_mode
    if "responseJsonSchema" in config:
        return _object(config["responseJsonSchema"], f"{at}.response_json_schema"), json_mode
    return None, json_mode


# ---------------------------------------------------------------------------------------------
# Responses


def _prompt_blocked(inp: MockInput) -> bool:
    return any(PROMPT_BLOCK_MARKER in m.text for m in inp.messages)


def _response_base(model: str, *, vertex: bool) -> dict[str, Any]:
    base: dict[str, Any] = {"modelVersion": model, "responseId": random_hex(20)}
    if vertex:
        base["createTime"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return base


def _safety_ratings(blocked: bool) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = []
    for k, category in enumerate(_HARM_CATEGORIES):
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if blocked and k == 1:
            rating = {"category": category, "probability": "HIGH", "blocked": True}
        ratings.append(rating)
    return ratings


def _usage(model: str, prompt: int, candidates: int, choices: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if is_thinking_model(model) and candidates:
        thoughts = THOUGHTS_TOKENS * choices
        usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] += thoughts
    return usage


def _blocked_prompt(model: str, inp: MockInput, *, vertex: bool) -> dict[str, Any]:
    prompt = count_prompt_tokens(inp)
    return {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _safety_ratings(True)},
        "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
        **_response_base(model, vertex=vertex),
    }


def _signature(model: str, call_name: str, args_json: str) -> str:
    digest = hashlib.shake_256(f"{model}\x00{call_name}\x00{args_json}".encode()).digest(48)
    return base64.b64encode(digest).decode()


def _parts(model: str, choice: MockChoice) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": choice.text}] if choice.text else []
    for k, call in enumerate(choice.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        if k == 0 and is_thinking_model(model):
            part["thoughtSignature"] = _signature(model, call.name, call.arguments_json)
        parts.append(part)
    return parts


def _candidate(index: int, parts: list[dict[str, Any]] | None, finish: str | None, *, vertex: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish is not None:
        candidate["finishReason"] = _FINISH[finish]
        if finish == "content_filter":
            candidate["safetyRatings"] = _safety_ratings(True)
    if index or not vertex:
        candidate["index"] = index  # Vertex, like proto3 JSON, leaves out index 0
    return candidate


def render_response(model: str, inp: MockInput, out: MockOutput, *, vertex: bool = False) -> dict[str, Any]:
    """A ``GenerateContentResponse`` exactly as Gemini returns it."""
    if _prompt_blocked(inp):
        return _blocked_prompt(model, inp, vertex=vertex)
    candidates = []
    for i, choice in enumerate(out.choices):
        parts = None if choice.finish_reason == "content_filter" else _parts(model, choice)
        candidates.append(_candidate(i, parts, choice.finish_reason, vertex=vertex))
    return {
        "candidates": candidates,
        "usageMetadata": _usage(model, out.prompt_tokens, out.completion_tokens, len(out.choices)),
        **_response_base(model, vertex=vertex),
    }


def render_stream(
    model: str, inp: MockInput, out: MockOutput, chunks: int, *, vertex: bool = False
) -> Iterator[dict[str, Any]]:
    """The partial responses a stream sends: text split into ``chunks`` pieces, function calls whole,
    finishReason with the last piece; every event carries the usage so far."""
    if _prompt_blocked(inp):
        yield _blocked_prompt(model, inp, vertex=vertex)
        return
    base = _response_base(model, vertex=vertex)
    plans = [_stream_steps(model, choice, chunks) for choice in out.choices]
    steps = max(len(plan) for plan in plans)
    partial = {"promptTokenCount": out.prompt_tokens, "totalTokenCount": out.prompt_tokens}
    for step in range(steps):
        candidates = []
        for i, (choice, plan) in enumerate(zip(out.choices, plans, strict=True)):
            if step < len(plan):
                finish = choice.finish_reason if step == len(plan) - 1 else None
                candidates.append(_candidate(i, plan[step], finish, vertex=vertex))
        last = step == steps - 1
        usage = _usage(model, out.prompt_tokens, out.completion_tokens, len(out.choices)) if last else partial
        yield {"candidates": candidates, "usageMetadata": usage, **base}


def _stream_steps(model: str, choice: MockChoice, chunks: int) -> list[list[dict[str, Any]] | None]:
    if choice.finish_reason == "content_filter":
        return [None]
    steps: list[list[dict[str, Any]] | None] = [[{"text": piece}] for piece in split_text(choice.text or "", chunks)]
    calls = [p for p in _parts(model, choice) if "functionCall" in p]
    if calls:
        steps.append(calls)
    return steps or [None]


# ---------------------------------------------------------------------------------------------
# Embeddings, token counts, models


def _embedding_model(model: str) -> int:
    if not is_embedding_model(model):
        raise not_found(f"models/{model} is not found for API version v1beta, or is not supported for "
                        "embedContent. Call ListModels to see the list of available models and their "
                        "supported methods.")  # fmt: skip
    return _EMBED_DIMENSIONS.get(model, 768)


def _dimensions(value: Any, native: int, at: str, request: str) -> int:
    if value is None:
        return native
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= native:
        raise _field(at, f"must be in the range [1, {native}]", request)
    return value


def render_batch_embeddings(body: Any, model: str) -> dict[str, Any]:
    """Validate a ``batchEmbedContents`` body and answer it."""
    native = _embedding_model(model)
    body = _object(body, "")
    _check_keys(body, frozenset({"requests"}), "")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise _field("requests", "must not be empty", _BATCH)
    if len(requests) > MAX_EMBED_BATCH:
        raise _field("requests", f"at most {MAX_EMBED_BATCH} requests can be in one batch", _BATCH)
    texts, dims = [], []
    for i, raw in enumerate(requests):
        at = f"requests[{i}]"
        req = _object(raw, at)
        _check_keys(req, _EMBED_REQUEST_FIELDS, at)
        if req.get("model") != f"models/{model}":
            raise _field(f"{at}.model", f"must be models/{model}, the model of the batch", _BATCH)
        texts.append(_embed_text(req.get("content"), f"{at}.content"))
        dims.append(_dimensions(req.get("outputDimensionality"), native, f"{at}.output_dimensionality", _BATCH))
    return {"embeddings": [{"values": embed([text], d)[0]} for text, d in zip(texts, dims, strict=True)]}


def _embed_text(raw: Any, at: str) -> str:
    content = _object(raw, at)
    _check_keys(content, _CONTENT_FIELDS, at)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _field(f"{at}.parts", "must not be empty", _BATCH)
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str) or not part["text"]:
            raise _field(f"{at}.parts[{j}].text", "must be non-empty text", _BATCH)
        texts.append(part["text"])
    return " ".join(texts)


def render_vertex_predict(body: Any, model: str) -> dict[str, Any]:
    """Validate a Vertex AI ``:predict`` body for a text embedding model and answer it."""
    native = _embedding_model(model)
    body = _object(body, "")
    _check_keys(body, frozenset({"instances", "parameters"}), "")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or len(instances) > MAX_PREDICT_INSTANCES:
        raise _invalid(f"instances: between 1 and {MAX_PREDICT_INSTANCES} instances are required")
    params = _object(body.get("parameters") or {}, "parameters")
    _check_keys(params, frozenset({"outputDimensionality", "autoTruncate"}), "parameters")
    dims = _dimensions(params.get("outputDimensionality"), native, "parameters.outputDimensionality", "PredictRequest")
    texts = []
    for i, instance in enumerate(instances):
        instance = _object(instance, f"instances[{i}]")
        _check_keys(instance, frozenset({"content", "task_type", "title"}), f"instances[{i}]")
        if not isinstance(instance.get("content"), str) or not instance["content"]:
            raise _invalid(f"instances[{i}].content: must be a non-empty string")
        texts.append(instance["content"])
    predictions = [
        {"embeddings": {"statistics": {"truncated": False, "token_count": estimate_tokens(t)}, "values": v}}
        for t, v in zip(texts, embed(texts, dims), strict=True)
    ]
    return {"predictions": predictions, "metadata": {"billableCharacterCount": sum(len(t) for t in texts)}}


def render_count_tokens(body: Any, model: str, *, vertex: bool = False) -> dict[str, Any]:
    """``countTokens``: the same count as ``usageMetadata.promptTokenCount`` for that input."""
    body = _object(body, "")
    _check_keys(body, frozenset({"contents", "generateContentRequest", "systemInstruction", "tools"}), "")
    inner = body.get("generateContentRequest")
    request = {k: v for k, v in body.items() if k != "generateContentRequest"} if inner is None else inner
    if isinstance(request, dict):
        request = {k: v for k, v in request.items() if k != "model"}
    return {"totalTokens": count_prompt_tokens(parse_request(request, model, vertex=vertex))}


def render_models(models: Sequence[str]) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "inputTokenLimit": 2048 if is_embedding_model(m) else 1_048_576,
                "outputTokenLimit": 1 if is_embedding_model(m) else 65_536,
                "supportedGenerationMethods": ["embedContent", "batchEmbedContents"]
                if is_embedding_model(m)
                else ["generateContent", "countTokens"],
            }
            for m in models
        ]
    }


# ---------------------------------------------------------------------------------------------
# Anthropic on Vertex AI


def anthropic_body(body: Any, model: str) -> dict[str, Any]:
    """A ``rawPredict`` body as an Anthropic Messages body: no ``model`` (it is in the URL), and
    ``anthropic_version`` set to Vertex's."""
    if not isinstance(body, dict):
        raise _anthropic_invalid("Input should be a valid dictionary")
    version = body.get("anthropic_version")
    # Vertex's own version, or (as recent Anthropic SDKs send) a dated API version.
    if version != ANTHROPIC_VERTEX_VERSION and not (isinstance(version, str) and _DATED_VERSION.fullmatch(version)):
        raise _anthropic_invalid(f"anthropic_version: Input should be '{ANTHROPIC_VERTEX_VERSION}'")
    if "model" in body:
        raise _anthropic_invalid("model: Extra inputs are not permitted (the model is part of the URL)")
    return {**{k: v for k, v in body.items() if k != "anthropic_version"}, "model": model}


def _anthropic_invalid(message: str) -> MockValidationError:
    return MockValidationError(400, anthropic_wire.error_body("invalid_request_error", message))


# ---------------------------------------------------------------------------------------------
# Vertex AI authentication: OAuth token endpoint and bearer check


@dataclass(slots=True)
class VertexAuth:
    """The token endpoint's settings, per app (``POST /_mock/vertex`` changes them)."""

    keys: dict[str, str] = field(default_factory=dict)  # kid -> public key PEM; empty: not verified
    token_ttl_s: int = 3600

    def update(self, fields: Mapping[str, Any]) -> None:
        keys = fields.get("keys", self.keys)
        ttl = fields.get("token_ttl_s", self.token_ttl_s)
        if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise ValueError("keys: expected an object of key id -> public key PEM")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise ValueError("token_ttl_s: expected a positive integer")
        self.keys, self.token_ttl_s = dict(keys), ttl


def _oauth_error(error: str, description: str) -> MockValidationError:
    return MockValidationError(400, {"error": error, "error_description": description})


def token_response(raw_body: bytes, auth: VertexAuth, now: float | None = None) -> tuple[int, dict[str, Any]]:
    """Google's OAuth token endpoint for the JWT-bearer grant of a service account."""
    now = time.time() if now is None else now
    try:
        form = dict(parse_qsl(raw_body.decode(), keep_blank_values=True))
        if form.get("grant_type") != JWT_BEARER_GRANT:
            raise _oauth_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        claims = _verify_assertion(form.get("assertion", ""), auth.keys, now)
    except MockValidationError as exc:
        return exc.status, exc.body
    except UnicodeDecodeError:
        return 400, {"error": "invalid_request", "error_description": "Malformed form body"}
    token = _mint_token(str(claims["iss"]), int(now) + auth.token_ttl_s)
    return 200, {"access_token": token, "expires_in": auth.token_ttl_s, "token_type": "Bearer"}


def _b64url_json(segment: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _verify_assertion(assertion: str, keys: Mapping[str, str], now: float) -> dict[str, Any]:
    """A well-formed RS256 JWT from a service-account key, checked offline (and its signature, when
    the key is registered)."""
    segments = assertion.split(".")
    if len(segments) != 3:
        raise _oauth_error("invalid_grant", "Invalid JWT: not a JWS compact serialization")
    try:
        header, claims = _b64url_json(segments[0]), _b64url_json(segments[1])
        signature = base64.urlsafe_b64decode(segments[2] + "=" * (-len(segments[2]) % 4))
    except (binascii.Error, ValueError):
        raise _oauth_error("invalid_grant", "Invalid JWT: segments are not base64url JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
        raise _oauth_error("invalid_grant", "Invalid JWT: header must say alg RS256 and name the key (kid)")
    if not isinstance(claims, dict):
        raise _oauth_error("invalid_grant", "Invalid JWT: claims must be an object")
    _check_claims(claims, now)
    if len(signature) < 128:
        raise _oauth_error("invalid_grant", "Invalid JWT Signature.")
    if keys:
        pem = keys.get(header["kid"])
        message = f"{segments[0]}.{segments[1]}".encode()
        if pem is None or not crypt.RSAVerifier.from_string(pem).verify(message, signature):
            raise _oauth_error("invalid_grant", "Invalid JWT Signature.")
    return claims


def _check_claims(claims: dict[str, Any], now: float) -> None:
    if not isinstance(claims.get("iss"), str) or "@" not in claims["iss"]:
        raise _oauth_error("invalid_grant", "Invalid JWT: iss must be the service account's email")
    if urlsplit(str(claims.get("aud", ""))).path != "/token":
        raise _oauth_error("invalid_grant", "Invalid JWT: aud must be the token endpoint")
    if CLOUD_PLATFORM_SCOPE not in str(claims.get("scope", "")).split():
        raise _oauth_error("invalid_scope", f"Invalid JWT: scope must include {CLOUD_PLATFORM_SCOPE}")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise _oauth_error("invalid_grant", "Invalid JWT: iat and exp are required")
    if iat > now + _CLOCK_SKEW_S or exp <= now or exp - iat > _MAX_ASSERTION_LIFETIME_S:
        raise _oauth_error("invalid_grant", _BAD_LIFETIME)


def _mac(payload: str) -> str:
    return hmac.new(_TOKEN_MAC_KEY, payload.encode(), hashlib.sha256).hexdigest()[:32]


def _mint_token(subject: str, expires_at: int) -> str:
    payload = base64.urlsafe_b64encode(f"{expires_at}:{subject}".encode()).decode().rstrip("=")
    return f"{_TOKEN_PREFIX}{payload}.{_mac(payload)}"


def _token_valid(token: str, now: float) -> bool:
    if not token.startswith(_TOKEN_PREFIX):
        return False
    payload, _, mac = token[len(_TOKEN_PREFIX) :].partition(".")
    if not hmac.compare_digest(mac, _mac(payload)):
        return False
    expires_at, _, _subject = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().partition(":")
    return expires_at.isdigit() and int(expires_at) > now


def check_bearer(authorization: str | None, now: float) -> None:
    """401 unless the request carries an unexpired access token from this mock's token endpoint."""
    token = bearer_token(authorization)
    if not token or not _token_valid(token, now):
        raise MockValidationError(401, error_body(
            401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                 "other valid authentication credential. See "
                 "https://developers.google.com/identity/sign-in/web/devconsole-project."))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# HTTP dialects (what the mock server needs to know per format)


class GeminiDialect:
    name = "gemini"
    done_frame: bytes | None = None  # Gemini streams just end; the last event has the finishReason

    def request_id_headers(self, request_id: str | None = None) -> dict[str, str]:
        return {}

    def check_request(self, request: Request, require_auth: bool) -> None:
        if require_auth and not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
            raise MockValidationError(403, error_body(
                403, "Method doesn't allow unregistered callers (callers without established identity). Please use "
                     "API Key or other form of API consumer identity to call this API."))  # fmt: skip

    bad_request = staticmethod(_invalid)
    invalid_json = staticmethod(invalid_json_error)
    fault_body = staticmethod(fault_error_body)

    def rate_limit_headers(self, retry_after_ms: int) -> dict[str, str]:
        return {}

    def frame(self, event: dict[str, Any]) -> bytes:
        return sse_data(event, b"\r\n\r\n")  # Google ends SSE events with CRLF

    def error_frame(self) -> bytes:
        return self.frame(stream_error_event())


class VertexDialect(GeminiDialect):
    """Vertex AI: every API call needs a bearer token from the token endpoint, whatever require_auth says."""

    name = "vertex"

    def check_request(self, request: Request, require_auth: bool) -> None:
        check_bearer(request.headers.get("authorization"), time.time())


class JsonArrayFraming(GeminiDialect):
    """``streamGenerateContent`` without ``alt=sse``: one JSON array, written element by element."""

    done_frame: bytes | None = b"]"

    def __init__(self) -> None:
        self._started = False  # per response: a new framing object is made for each stream

    def frame(self, event: dict[str, Any]) -> bytes:
        prefix = b",\r\n" if self._started else b"["
        self._started = True
        return prefix + orjson.dumps(event)

    def error_frame(self) -> bytes:
        return self.frame(stream_error_event()) + b"]"
