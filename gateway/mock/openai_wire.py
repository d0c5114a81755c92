"""OpenAI wire format: Chat Completions, Embeddings and Models.

Pure functions, usable in-process (no socket) and by the HTTP mock app:

* :func:`parse_request` validates a ``/v1/chat/completions`` body like the real API and returns
  a :class:`MockInput` (raises :class:`MockValidationError` carrying OpenAI's error shape);
* :func:`render_completion` / :func:`render_stream` shape an engine output as a
  ``chat.completion`` object / the ``chat.completion.chunk`` sequence (without SSE framing);
* :func:`render_embeddings` validates and answers a ``/v1/embeddings`` body.

Error messages copy the real API's wording so gateway error mapping can be tested faithfully.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .engine import (
    MockChoice,
    MockInput,
    MockMessage,
    MockOutput,
    MockTool,
    MockValidationError,
    embed,
    estimate_tokens,
    random_hex,
)
from .wire import bearer_token, for_status, optional_list

__all__ = [
    "MockValidationError",
    "auth_error",
    "fault_error_body",
    "parse_request",
    "render_completion",
    "render_embeddings",
    "render_models",
    "render_stream",
    "split_text",
    "stream_error_chunk",
]

SYSTEM_FINGERPRINT = "fp_mock"
SERVICE_TIER = "default"
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLES_TEXT = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"
USER_PART_TYPES = ("text", "image_url", "input_audio", "file")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_STOP_SEQUENCES = 4
MAX_TOOLS = 128
MAX_EMBEDDING_INPUTS = 2048
IMAGE_TEXT = "[image]"  # how an image part appears to the mock model (and so in its echo)

CHAT_PARAMS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
        "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
        "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
        "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
        "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice",
        "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
EMBEDDING_PARAMS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


# ---------------------------------------------------------------------------------------------
# Errors


def error_body(
    message: str, param: str | None = None, code: str | None = None, type_: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> MockValidationError:
    return MockValidationError(400, error_body(message, param, code))


def _missing(param: str) -> MockValidationError:
    return _invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _bad_type(param: str, expected: str, value: Any) -> MockValidationError:
    message = f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead."
    return _invalid(message, param, "invalid_type")


def _bad_value(param: str, value: Any, allowed: Sequence[str]) -> MockValidationError:
    quoted = [f"'{a}'" for a in allowed]
    # OpenAI's phrasing: 'a' and 'b' / 'a', 'b', and 'c'
    listing = " and ".join(quoted) if len(quoted) <= 2 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    return _invalid(f"Invalid value: '{value}'. Supported values are: {listing}.", param, "invalid_value")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def auth_error(authorization: str | None) -> MockValidationError | None:
    """401 when the bearer token is missing (the mock accepts any non-empty key)."""
    if bearer_token(authorization):
        return None
    message = (
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
        "username) if you're accessing the API from your browser and are prompted for a username and "
        "password. You can obtain an API key from https://platform.openai.com/account/api-keys."
    )
    return MockValidationError(401, error_body(message))


def invalid_json_error() -> MockValidationError:
    message = (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
        "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
        "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
        "help center at help.openai.com.)"
    )
    return _invalid(message)


_FAULT_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request (injected by mock).", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to access this resource.", "invalid_request_error", "unsupported_country"),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    429: ("Rate limit reached for requests. Please try again shortly.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    503: ("The engine is currently overloaded, please try again later", "server_error", None),
}  # fmt: skip


def fault_error_body(status: int) -> dict[str, Any]:
    """Body of an injected failure, as OpenAI sends it for that status."""
    server = ("The server had an error processing your request.", "server_error", None)
    client = ("Request failed (injected by mock).", "invalid_request_error", None)
    message, type_, code = for_status(_FAULT_ERRORS, status, server, client)
    return error_body(message, None, code, type_)


def stream_error_chunk() -> dict[str, Any]:
    """What OpenAI sends as an SSE ``data:`` payload when a stream fails mid-way."""
    message = "The server had an error while processing your request. Sorry about that!"
    return error_body(message, type_="server_error")


# ---------------------------------------------------------------------------------------------
# Request validation


def parse_request(body: Any, *, allow_unknown: bool = False) -> MockInput:
    """Validate a chat completions body like the real API and turn it into engine input.

    ``allow_unknown`` accepts parameters OpenAI itself would reject, for OpenAI-compatible
    providers that extend the API.
    """
    if not isinstance(body, dict):
        raise _bad_type("body", "an object", body)
    if not allow_unknown:
        for key in body:
            if key not in CHAT_PARAMS:
                raise _invalid(f"Unrecognized request argument supplied: {key}")
    model = body.get("model")
    if model is None or model == "":
        raise _invalid("you must provide a model parameter")
    if not isinstance(model, str):
        raise _bad_type("model", "a string", model)
    messages = _parse_messages(body.get("messages"))
    tools = _parse_tools(body)
    json_mode, json_schema = _parse_response_format(body.get("response_format"), messages)
    stream = _optional_bool(body, "stream")
    if body.get("stream_options") is not None:
        _check_stream_options(body["stream_options"], stream)
    _check_sampling(body)
    return MockInput(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=_parse_tool_choice(body.get("tool_choice"), body),
        max_tokens=_parse_max_tokens(body),
        stop=_parse_stop(body.get("stop")),
        n=_int_at_least(body, "n", 1, default=1),
        json_mode=json_mode,
        parallel_tool_calls=_parse_parallel(body),
        json_schema=json_schema,
    )


def _parse_messages(raw: Any) -> list[MockMessage]:
    if raw is None:
        raise _missing("messages")
    if not isinstance(raw, list):
        raise _bad_type("messages", "an array of objects", raw)
    if not raw:
        raise _invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    checker = _ToolCallPairing()
    out = []
    for i, msg in enumerate(raw):
        parsed = _parse_message(i, msg)
        checker.visit(i, msg, parsed)
        out.append(parsed)
    checker.finish(len(raw))
    return out


class _ToolCallPairing:
    """Enforces OpenAI's rule: assistant tool_calls are answered by tool messages, and only then."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}  # tool_call_id -> function name, awaiting a tool message
        self.answerable = False  # the previous message(s) allow a tool message here

    def visit(self, index: int, msg: dict[str, Any], parsed: MockMessage) -> None:
        role = msg["role"]
        if role == "tool":
            self._visit_tool(index, msg, parsed)
            return
        if self.pending:
            raise self._unanswered(index)
        calls = msg.get("tool_calls") if role == "assistant" else None
        self.pending = {c["id"]: c["function"]["name"] for c in calls} if calls else {}
        self.answerable = bool(calls)

    def _visit_tool(self, index: int, msg: dict[str, Any], parsed: MockMessage) -> None:
        if not self.answerable:
            raise _invalid(
                "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                "message with 'tool_calls'.",
                f"messages.[{index}].role",
            )
        call_id = msg["tool_call_id"]
        if call_id not in self.pending:
            raise _invalid(
                f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                f"messages.[{index}].tool_call_id",
            )
        parsed.tool_name = self.pending.pop(call_id)

    def finish(self, count: int) -> None:
        if self.pending:
            raise self._unanswered(count)

    def _unanswered(self, index: int) -> MockValidationError:
        ids = ", ".join(self.pending)
        return _invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to "
            f"each 'tool_call_id'. The following tool_call_ids did not have response messages: {ids}",
            f"messages.[{index}].role",
        )


def _object_with(where: str, value: Any, key: str) -> tuple[dict[str, Any], Any]:
    """`value` as an object and its required `key`, with OpenAI's errors when either is missing."""
    if not isinstance(value, dict):
        raise _bad_type(where, "an object", value)
    field = value.get(key)
    if field is None:
        raise _missing(f"{where}.{key}")
    return value, field


def _parse_message(i: int, msg: Any) -> MockMessage:
    where = f"messages[{i}]"
    msg, role = _object_with(where, msg, "role")
    if role not in ROLES:
        raise _invalid(
            f"Invalid value: '{role}'. Supported values are: {_ROLES_TEXT}.", f"{where}.role", "invalid_value"
        )
    if role == "assistant":
        return MockMessage("assistant", _parse_assistant(where, msg))
    if role in ("tool", "function"):
        return _parse_tool_result(where, role, msg)
    content = msg.get("content")
    if content is None:
        raise _missing(f"{where}.content")
    allowed = USER_PART_TYPES if role == "user" else ("text",)
    return MockMessage(role, _content_text(f"{where}.content", content, allowed))


def _parse_assistant(where: str, msg: dict[str, Any]) -> str:
    calls = msg.get("tool_calls")
    if calls is not None:
        _check_tool_calls(f"{where}.tool_calls", calls)
    content = msg.get("content")
    if content is None:
        if calls or msg.get("function_call") or msg.get("refusal") or msg.get("audio"):
            return ""
        raise _invalid("Invalid value for 'content': expected a string, got null.", f"{where}.content")
    return _content_text(f"{where}.content", content, ("text", "refusal"))


def _check_tool_calls(where: str, calls: Any) -> None:
    if not isinstance(calls, list):
        raise _bad_type(where, "an array of objects", calls)
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            raise _bad_type(at, "an object", call)
        for key in ("id", "type", "function"):
            if key not in call:
                raise _missing(f"{at}.{key}")
        if call["type"] != "function":
            raise _bad_value(f"{at}.type", call["type"], ("function",))
        function = call["function"]
        if not isinstance(function, dict):
            raise _bad_type(f"{at}.function", "an object", function)
        for key in ("name", "arguments"):
            if not isinstance(function.get(key), str):
                raise _missing(f"{at}.function.{key}")


def _parse_tool_result(where: str, role: str, msg: dict[str, Any]) -> MockMessage:
    id_key = "tool_call_id" if role == "tool" else "name"
    if not isinstance(msg.get(id_key), str):
        raise _missing(f"{where}.{id_key}")
    content = msg.get("content")
    if content is None:
        raise _missing(f"{where}.content")
    text = _content_text(f"{where}.content", content, ("text",))
    name = msg["name"] if role == "function" else None
    return MockMessage("tool", text, is_tool_result=True, tool_name=name)


def _content_text(where: str, content: Any, allowed: Sequence[str]) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad_type(where, "one of a string or array of objects", content)
    if not content:
        raise _invalid(
            f"Invalid '{where}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            where,
            "empty_array",
        )
    return "\n".join(_part_text(f"{where}[{k}]", part, allowed) for k, part in enumerate(content))


def _part_text(where: str, part: Any, allowed: Sequence[str]) -> str:
    part, kind = _object_with(where, part, "type")
    if kind not in allowed:
        raise _bad_value(f"{where}.type", kind, allowed)
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise _missing(f"{where}.{kind}")
        return text
    if kind == "image_url":
        _check_image_url(where, part.get("image_url"))
        return IMAGE_TEXT
    return f"[{kind}]"


def _check_image_url(where: str, image: Any) -> None:
    if not isinstance(image, dict) or "url" not in image:
        raise _missing(f"{where}.image_url.url" if isinstance(image, dict) else f"{where}.image_url")
    url = image["url"]
    if not isinstance(url, str):
        raise _bad_type(f"{where}.image_url.url", "a string", url)
    if url.startswith("data:"):
        header, sep, payload = url.partition(",")
        if not sep or not header.startswith("data:image/") or ";base64" not in header or not payload:
            raise _invalid(
                "Invalid image data. Expected a base64-encoded data URL with an image MIME type "
                "(e.g. 'data:image/png;base64,...').",
                f"{where}.image_url.url",
                "invalid_image_format",
            )
    elif not url.startswith(("http://", "https://")):
        raise _invalid(
            f"Invalid '{where}.image_url.url'. Expected a valid URL, but got a value with an invalid format.",
            f"{where}.image_url.url",
            "invalid_value",
        )
    detail = image.get("detail")
    if detail is not None and detail not in ("auto", "low", "high"):
        raise _bad_value(f"{where}.image_url.detail", detail, ("auto", "low", "high"))


def _parse_tools(body: dict[str, Any]) -> list[MockTool]:
    raw = body.get("tools")
    raw = optional_list(raw, lambda: _bad_type("tools", "an array of objects", raw))
    _check_length("tools", raw, MAX_TOOLS)
    tools = [_parse_tool(f"tools[{i}]", tool) for i, tool in enumerate(raw)]
    return [t for t in tools if t is not None]


def _parse_tool(where: str, tool: Any) -> MockTool | None:
    tool, kind = _object_with(where, tool, "type")
    if kind not in ("function", "custom"):
        raise _bad_value(f"{where}.type", kind, ("function", "custom"))
    if kind == "custom":
        return None  # free-form custom tools exist on the API; the mock model never calls them
    function = tool.get("function")
    if not isinstance(function, dict):
        raise _missing(f"{where}.function")
    name = function.get("name")
    if not isinstance(name, str):
        raise _missing(f"{where}.function.name")
    if not name or len(name) > 64 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
        raise _invalid(
            f"Invalid '{where}.function.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            f"{where}.function.name",
            "invalid_value",
        )
    params = function.get("parameters", {})
    if not isinstance(params, dict):
        raise _bad_type(f"{where}.function.parameters", "an object", params)
    return MockTool(name=name, parameters=params)


def _parse_tool_choice(raw: Any, body: dict[str, Any]) -> str | dict[str, str]:
    if raw is None:
        return "auto"
    if not body.get("tools"):
        raise _invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if isinstance(raw, str):
        if raw not in ("none", "auto", "required"):
            raise _bad_value("tool_choice", raw, ("none", "auto", "required"))
        return raw
    if not isinstance(raw, dict):
        raise _bad_type("tool_choice", "one of a string or object", raw)
    kind = raw.get("type")
    if kind == "allowed_tools":
        mode = (raw.get("allowed_tools") or {}).get("mode", "auto")
        return "required" if mode == "required" else "auto"
    if kind != "function":
        raise _bad_value("tool_choice.type", kind, ("function", "allowed_tools", "custom"))
    function = raw.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _missing("tool_choice.function.name")
    return {"name": function["name"]}


def _parse_parallel(body: dict[str, Any]) -> bool:
    value = body.get("parallel_tool_calls")
    if value is None:
        return True
    if not body.get("tools"):
        raise _invalid(
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when "
            "'tools' are specified.",
            "parallel_tool_calls",
        )
    if not isinstance(value, bool):
        raise _bad_type("parallel_tool_calls", "a boolean", value)
    return value


def _parse_response_format(raw: Any, messages: list[MockMessage]) -> tuple[bool, dict[str, Any] | None]:
    if raw is None:
        return False, None
    if not isinstance(raw, dict):
        raise _bad_type("response_format", "an object", raw)
    kind = raw.get("type")
    if kind is None:
        raise _missing("response_format.type")
    if kind not in RESPONSE_FORMATS:
        raise _bad_value("response_format.type", kind, RESPONSE_FORMATS)
    if kind == "text":
        return False, None
    if kind == "json_object":
        if not any("json" in m.text.lower() for m in messages):
            raise _invalid(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                "messages",
            )
        return True, None
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise _missing("response_format.json_schema")
    if not isinstance(spec.get("name"), str):
        raise _missing("response_format.json_schema.name")
    schema = spec.get("schema")
    return True, schema if isinstance(schema, dict) else {"type": "object"}


def _check_stream_options(options: Any, stream: bool) -> None:
    if not stream:
        raise _invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    if not isinstance(options, dict):
        raise _bad_type("stream_options", "an object", options)
    include = options.get("include_usage")
    if include is not None and not isinstance(include, bool):
        raise _bad_type("stream_options.include_usage", "a boolean", include)


def _check_sampling(body: dict[str, Any]) -> None:
    _number_in(body, "temperature", 0, 2)
    _number_in(body, "top_p", 0, 1)
    _number_in(body, "presence_penalty", -2, 2)
    _number_in(body, "frequency_penalty", -2, 2)
    _optional_bool(body, "logprobs")
    if body.get("top_logprobs") is not None:
        _int_at_least(body, "top_logprobs", 0, default=0)
    _check_types(body)


# The remaining optional parameters: JSON type (and allowed values) as the API checks them.
_PARAM_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "logit_bias": (dict, "an object"),
    "metadata": (dict, "an object"),
    "prediction": (dict, "an object"),
    "audio": (dict, "an object"),
    "web_search_options": (dict, "an object"),
    "seed": (int, "an integer"),
    "user": (str, "a string"),
    "prompt_cache_key": (str, "a string"),
    "safety_identifier": (str, "a string"),
    "store": (bool, "a boolean"),
    "modalities": (list, "an array of strings"),
    "functions": (list, "an array of objects"),
}
_PARAM_VALUES: dict[str, tuple[str, ...]] = {
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh"),
    "service_tier": ("auto", "default", "flex", "scale", "priority"),
    "verbosity": ("low", "medium", "high"),
}


def _check_types(body: dict[str, Any]) -> None:
    for key, (kind, expected) in _PARAM_TYPES.items():
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise _bad_type(key, expected, value)
    for key, allowed in _PARAM_VALUES.items():
        value = body.get(key)
        if value is not None and value not in allowed:
            raise _bad_value(key, value, allowed)


def _number_in(body: dict[str, Any], key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_type(key, "a decimal", value)
    if value < low:
        raise _invalid(
            f"Invalid '{key}': decimal below minimum value. Expected a value >= {low}, but got {value} instead.",
            key,
            "decimal_below_min_value",
        )
    if value > high:
        raise _invalid(
            f"Invalid '{key}': decimal above maximum value. Expected a value <= {high}, but got {value} instead.",
            key,
            "decimal_above_max_value",
        )


def _int_at_least(body: dict[str, Any], key: str, low: int, *, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(key, "an integer", value)
    if value < low:
        raise _invalid(
            f"Invalid '{key}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            key,
            "integer_below_min_value",
        )
    return value


def _optional_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad_type(key, "a boolean", value)
    return value


def _parse_max_tokens(body: dict[str, Any]) -> int | None:
    # max_completion_tokens supersedes the deprecated max_tokens; both are still accepted
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is not None:
            return _int_at_least(body, key, 1, default=1)
    return None


def _parse_stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _bad_type("stop", "one of a string or array of strings", raw)
    _check_length("stop", raw, MAX_STOP_SEQUENCES)
    return raw


def _check_length(param: str, raw: list[Any], limit: int) -> None:
    if len(raw) > limit:
        raise _invalid(
            f"Invalid '{param}': array too long. Expected an array with maximum length {limit}, "
            f"but got an array with length {len(raw)} instead.",
            param,
            "array_above_max_length",
        )


# ---------------------------------------------------------------------------------------------
# Responses


def _completion_id() -> str:
    return "chatcmpl-" + random_hex(32)


def usage_dict(out: MockOutput) -> dict[str, Any]:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call_dicts(choice: MockChoice) -> list[dict[str, Any]]:
    return [
        {
            "id": "call_" + c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments_json},
        }
        for c in choice.tool_calls
    ]


def _message(choice: MockChoice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text,
        "refusal": None,
        "annotations": [],
    }
    if choice.tool_calls:
        message["tool_calls"] = _tool_call_dicts(choice)
    return message


def render_completion(body: Mapping[str, Any], out: MockOutput) -> dict[str, Any]:
    """A ``chat.completion`` object exactly as OpenAI returns it."""
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {"index": i, "message": _message(c), "logprobs": None, "finish_reason": c.finish_reason}
            for i, c in enumerate(out.choices)
        ],
        "usage": usage_dict(out),
        "service_tier": SERVICE_TIER,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def split_text(text: str, pieces: int) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty, near-equal fragments."""
    if not text:
        return []
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out, start = [], 0
    for k in range(pieces):
        end = start + size + (1 if k < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def render_stream(body: Mapping[str, Any], out: MockOutput, chunks: int) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` sequence OpenAI streams (without ``data:`` framing / [DONE])."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base: dict[str, Any] = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "service_tier": SERVICE_TIER,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None  # OpenAI sends an explicit null until the final usage chunk

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    for index, choice in enumerate(out.choices):
        for delta in _choice_deltas(choice, chunks):
            yield chunk(index, delta)
        yield chunk(index, {}, choice.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": usage_dict(out)}


def _choice_deltas(choice: MockChoice, chunks: int) -> Iterator[dict[str, Any]]:
    if not choice.tool_calls:
        yield {"role": "assistant", "content": "", "refusal": None}
        for piece in split_text(choice.text or "", chunks):
            yield {"content": piece}
        return
    # Like OpenAI: the role rides on the first tool call's header, then argument fragments follow.
    for k, call in enumerate(_tool_call_dicts(choice)):
        header = {
            "index": k,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        yield (
            {"role": "assistant", "content": None, "tool_calls": [header], "refusal": None}
            if k == 0
            else {"tool_calls": [header]}
        )
        for piece in split_text(call["function"]["arguments"], chunks):
            yield {"tool_calls": [{"index": k, "function": {"arguments": piece}}]}


# ---------------------------------------------------------------------------------------------
# Embeddings and models


def render_embeddings(body: Any) -> dict[str, Any]:
    """Validate an embeddings body and answer it (``encoding_format`` float or base64)."""
    if not isinstance(body, dict):
        raise _bad_type("body", "an object", body)
    for key in body:
        if key not in EMBEDDING_PARAMS:
            raise _invalid(f"Unrecognized request argument supplied: {key}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter")
    texts, tokens = _embedding_inputs(body.get("input"))
    dimensions = _embedding_dimensions(body, model)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _bad_value("encoding_format", encoding, ("float", "base64"))
    vectors = embed(texts, dimensions)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode_vector(v, encoding)} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _embedding_inputs(raw: Any) -> tuple[list[str], int]:
    """Texts to embed and their token count; token arrays are embedded by their ids."""
    if raw is None:
        raise _missing("input")
    items = [raw] if isinstance(raw, str) or _is_token_array(raw) else raw
    if not isinstance(items, list) or not items or len(items) > MAX_EMBEDDING_INPUTS:
        raise _invalid_input()
    texts, tokens = [], 0
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
            tokens += estimate_tokens(item)
        elif _is_token_array(item) and item:
            texts.append(" ".join(map(str, item)))
            tokens += len(item)
        else:
            raise _invalid_input()
    return texts, tokens


def _is_token_array(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(t, int) and not isinstance(t, bool) for t in value)


def _invalid_input() -> MockValidationError:
    return _invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
    )


def _embedding_dimensions(body: dict[str, Any], model: str) -> int:
    native = 3072 if "large" in model else 1536
    if body.get("dimensions") is None:
        return native
    if "ada-002" in model:
        raise _invalid("This model does not support specifying dimensions.", "dimensions")
    dims = _int_at_least(body, "dimensions", 1, default=native)
    if dims > native:
        raise _invalid(
            f"Invalid 'dimensions': integer above maximum value. Expected a value <= {native}, but got {dims} instead.",
            "dimensions",
            "integer_above_max_value",
        )
    return dims


def _encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    # the SDK's default: little-endian float32, base64-encoded
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def render_models(models: Sequence[str], created: int = 1_700_000_000) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": created, "owned_by": "system"} for m in models],
    }
