"""Anthropic Messages API wire format.

Pure functions, usable in-process (no socket) and by the HTTP mock app:

* :func:`check_headers` enforces ``x-api-key`` / ``anthropic-version`` like the real API;
* :func:`parse_request` validates a ``/v1/messages`` body and returns a :class:`MockInput`
  (raises :class:`MockValidationError` carrying Anthropic's error shape);
* :func:`render_message` / :func:`render_stream` shape an engine output as a ``message`` object /
  the raw stream events (dicts; the SSE event name is each event's ``type``);
* :func:`parse_count_tokens_request` + :func:`render_count_tokens` serve ``count_tokens``.

Error messages copy the real API's (pydantic-style) wording.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .engine import (
    MockChoice,
    MockInput,
    MockMessage,
    MockOutput,
    MockTool,
    MockValidationError,
    count_prompt_tokens,
    random_hex,
)
from .openai_wire import IMAGE_TEXT, split_text
from .wire import bearer_token, for_status, optional_list

__all__ = [
    "MockValidationError",
    "check_headers",
    "error_body",
    "fault_error_body",
    "parse_count_tokens_request",
    "parse_request",
    "render_count_tokens",
    "render_message",
    "render_models",
    "render_stream",
    "stream_error_event",
]

SERVICE_TIER = "standard"
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
BLOCK_TYPES = (
    "text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
    "redacted_thinking", "server_tool_use", "web_search_tool_result", "container_upload",
)  # fmt: skip
_COUNT_TOKENS_PARAMS = frozenset(
    {
        "model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
        "output_format", "speed", "mcp_servers", "context_management", "user_profile_id", "workspace_id",
    }
)  # fmt: skip
MESSAGES_PARAMS = _COUNT_TOKENS_PARAMS | {
    "max_tokens", "metadata", "stop_sequences", "stream", "temperature", "top_p", "top_k", "service_tier",
    "container", "inference_geo", "diagnostics",
}  # fmt: skip
TOOL_RESULT_PART_TYPES = ("text", "image", "document", "search_result")
MIN_THINKING_BUDGET = 1024
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


# ---------------------------------------------------------------------------------------------
# Errors


def new_request_id() -> str:
    return "req_" + random_hex()


def error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id or new_request_id(),
    }


def _invalid(message: str) -> MockValidationError:
    return MockValidationError(400, error_body("invalid_request_error", message))


_FAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (injected by mock)."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def fault_error_body(status: int, request_id: str | None = None) -> dict[str, Any]:
    """Body of an injected failure, as Anthropic sends it for that status."""
    server, client = ("api_error", "Internal server error"), ("invalid_request_error", "Error")
    return error_body(*for_status(_FAULT_ERRORS, status, server, client), request_id)


def stream_error_event() -> dict[str, Any]:
    """The ``error`` event Anthropic sends when a stream fails after it started."""
    return {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def check_headers(headers: Mapping[str, str], *, require_auth: bool) -> None:
    """401 without an API key (when auth is required), 400 without ``anthropic-version``.

    The key comes in ``x-api-key`` or, as recent SDKs send it, ``Authorization: Bearer``.
    """
    if require_auth and not (headers.get("x-api-key") or bearer_token(headers.get("authorization"))):
        raise MockValidationError(401, error_body("authentication_error", "x-api-key header is required"))
    if not headers.get("anthropic-version"):
        raise _invalid("anthropic-version: header is required")


def invalid_json_error(detail: str) -> MockValidationError:
    return _invalid(f"There was an error parsing the body: {detail}")


# ---------------------------------------------------------------------------------------------
# Request validation


def parse_request(body: Any) -> MockInput:
    """Validate a ``/v1/messages`` body like the real API and turn it into engine input."""
    return _parse(body, MESSAGES_PARAMS, needs_max_tokens=True)


def parse_count_tokens_request(body: Any) -> MockInput:
    """``/v1/messages/count_tokens`` takes the same body minus generation parameters."""
    return _parse(body, _COUNT_TOKENS_PARAMS, needs_max_tokens=False)


def _parse(body: Any, allowed: frozenset[str], *, needs_max_tokens: bool) -> MockInput:
    if not isinstance(body, dict):
        raise _invalid("Input should be a valid dictionary")
    for key in body:
        if key not in allowed:
            raise _invalid(f"{key}: Extra inputs are not permitted")
    model = body.get("model")
    if model is None:
        raise _invalid("model: Field required")
    if not isinstance(model, str):
        raise _invalid("model: Input should be a valid string")
    max_tokens = _parse_max_tokens(body) if needs_max_tokens else None
    messages = _parse_system(body.get("system")) + _parse_messages(body.get("messages"))
    tools = _parse_tools(body.get("tools"))
    tool_choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    _check_sampling(body)
    _check_thinking(body.get("thinking"), max_tokens, body.get("temperature"))
    schema = _output_schema(body)
    return MockInput(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=max_tokens,
        stop=_parse_stop_sequences(body.get("stop_sequences")),
        json_mode=schema is not None,
        json_schema=schema,
        parallel_tool_calls=parallel,
    )


def _parse_max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens")
    if value is None:
        raise _invalid("max_tokens: Field required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("max_tokens: Input should be a valid integer")
    if value < 1:
        raise _invalid("max_tokens: Input should be greater than or equal to 1")
    return value


def _parse_system(system: Any) -> list[MockMessage]:
    if system is None:
        return []
    if isinstance(system, str):
        return [MockMessage("system", system)] if system else []
    if not isinstance(system, list):
        raise _invalid("system: Input should be a valid list")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid(f"system.{i}.type: Input should be 'text'")
        texts.append(_text_of(f"system.{i}", block))
    return [MockMessage("system", "\n".join(texts))]


def _parse_messages(raw: Any) -> list[MockMessage]:
    if raw is None:
        raise _invalid("messages: Field required")
    if not isinstance(raw, list):
        raise _invalid("messages: Input should be a valid list")
    if not raw:
        raise _invalid("messages: at least one message is required")
    out: list[MockMessage] = []
    tool_names: dict[str, str] = {}  # tool_use id -> tool name, to label tool results
    prev_tool_uses: list[str] = []
    for i, msg in enumerate(raw):
        role, blocks = _message_blocks(i, msg, is_last=i == len(raw) - 1)
        if i == 0 and role != "user":
            raise _invalid('messages: first message must use the "user" role')
        _check_tool_pairing(i, blocks, prev_tool_uses)
        prev_tool_uses = [b["id"] for b in blocks if b["type"] == "tool_use"]
        tool_names.update({b["id"]: b["name"] for b in blocks if b["type"] == "tool_use"})
        out.extend(_to_mock_messages(role, blocks, tool_names))
    return out


def _message_blocks(i: int, msg: Any, *, is_last: bool) -> tuple[str, list[dict[str, Any]]]:
    """Validate one message; returns its role and content as a list of blocks."""
    if not isinstance(msg, dict):
        raise _invalid(f"messages.{i}: Input should be a valid dictionary")
    role = msg.get("role")
    if role is None:
        raise _invalid(f"messages.{i}.role: Field required")
    if role not in ("user", "assistant"):
        raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    if "content" not in msg:
        raise _invalid(f"messages.{i}.content: Field required")
    content = msg["content"]
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}] if content else []
    elif isinstance(content, list):
        blocks = content
        for j, block in enumerate(blocks):
            _check_block(f"messages.{i}.content.{j}", role, block)
    else:
        raise _invalid(f"messages.{i}.content: Input should be a valid list")
    if not blocks and not (is_last and role == "assistant"):
        raise _invalid(
            f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        )
    return role, blocks


def _check_block(where: str, role: str, block: Any) -> None:
    if not isinstance(block, dict):
        raise _invalid(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        tags = ", ".join(f"'{t}'" for t in BLOCK_TYPES)
        raise _invalid(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: {tags}"
        )
    if kind == "text":
        _text_of(where, block)
    elif kind in ("image", "document"):
        _check_source(f"{where}.{kind}", block)
    elif kind == "tool_use":
        _check_tool_use(where, block)
    elif kind == "tool_result":
        _check_tool_result(where, block)


def _text_of(where: str, block: dict[str, Any]) -> str:
    text = block.get("text")
    if text is None:
        raise _invalid(f"{where}.text: Field required")
    if not isinstance(text, str):
        raise _invalid(f"{where}.text: Input should be a valid string")
    if not text:
        raise _invalid("messages: text content blocks must be non-empty")
    return text


def _check_source(where: str, block: dict[str, Any]) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source: Field required")
    kind = source.get("type")
    if kind == "base64":
        media = source.get("media_type")
        if where.endswith(".image") and media not in IMAGE_MEDIA_TYPES:
            raise _invalid(
                f"{where}.source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
                "'image/gif' or 'image/webp'"
            )
        if not isinstance(source.get("data"), str) or not source["data"]:
            raise _invalid(f"{where}.source.base64.data: Field required")
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise _invalid(f"{where}.source.url.url: Field required")
    elif kind not in ("file", "text", "content"):
        raise _invalid(
            f"{where}.source: Input tag '{kind}' found using 'type' does not match any of the expected "
            "tags: 'base64', 'url', 'file'"
        )


def _check_tool_use(where: str, block: dict[str, Any]) -> None:
    for key in ("id", "name"):
        if not isinstance(block.get(key), str):
            raise _invalid(f"{where}.tool_use.{key}: Field required")
    if not isinstance(block.get("input"), dict):
        raise _invalid(f"{where}.tool_use.input: Input should be a valid dictionary")


def _check_tool_result(where: str, block: dict[str, Any]) -> None:
    if not isinstance(block.get("tool_use_id"), str):
        raise _invalid(f"{where}.tool_result.tool_use_id: Field required")
    content = block.get("content")
    if content is not None and not isinstance(content, str | list):
        raise _invalid(f"{where}.tool_result.content: Input should be a valid list")
    if isinstance(content, list):
        for k, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in TOOL_RESULT_PART_TYPES:
                raise _invalid(f"{where}.tool_result.content.{k}: Input should be a text or image block")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise _invalid(f"{where}.tool_result.is_error: Input should be a valid boolean")


def _check_tool_pairing(i: int, blocks: list[dict[str, Any]], prev_tool_uses: list[str]) -> None:
    """Each tool_use must be answered by a tool_result in the very next message, and vice versa."""
    results = [(j, b["tool_use_id"]) for j, b in enumerate(blocks) if b["type"] == "tool_result"]
    answered = {tool_use_id for _, tool_use_id in results}
    missing = [tid for tid in prev_tool_uses if tid not in answered]
    if missing:
        raise _invalid(
            f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
            "the next message."
        )
    for j, tool_use_id in results:
        if tool_use_id not in prev_tool_uses:
            raise _invalid(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{tool_use_id}. Each `tool_result` block must have a corresponding `tool_use` block in "
                "the previous message."
            )


def _to_mock_messages(role: str, blocks: list[dict[str, Any]], tool_names: dict[str, str]) -> list[MockMessage]:
    """Tool results become their own engine messages; other blocks are joined as text."""
    out: list[MockMessage] = []
    texts: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind == "tool_result":
            if texts:
                out.append(MockMessage(role, "\n".join(texts)))
                texts = []
            name = tool_names.get(block["tool_use_id"])
            out.append(MockMessage("tool", _tool_result_text(block), is_tool_result=True, tool_name=name))
        elif kind == "text":
            texts.append(block["text"])
        elif kind == "image":
            texts.append(IMAGE_TEXT)
        elif kind in ("document", "search_result"):
            texts.append(f"[{kind}]")
    if texts or not out:
        out.append(MockMessage(role, "\n".join(texts)))
    return out


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", IMAGE_TEXT) if p.get("type") == "text" else IMAGE_TEXT for p in content)


def _parse_tools(raw: Any) -> list[MockTool]:
    tools = []
    for i, tool in enumerate(optional_list(raw, lambda: _invalid("tools: Input should be a valid list"))):
        if not isinstance(tool, dict):
            raise _invalid(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue  # server tools (web_search_..., bash_..., ...) run at Anthropic, never in the mock
        tools.append(_parse_custom_tool(f"tools.{i}.custom", tool))
    return tools


def _parse_custom_tool(where: str, tool: dict[str, Any]) -> MockTool:
    name = tool.get("name")
    if not isinstance(name, str):
        raise _invalid(f"{where}.name: Field required")
    if not 1 <= len(name) <= 128 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in name):
        raise _invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    schema = tool.get("input_schema")
    if schema is None:
        raise _invalid(f"{where}.input_schema: Field required")
    if not isinstance(schema, dict):
        raise _invalid(f"{where}.input_schema: Input should be a valid dictionary")
    return MockTool(name=name, parameters=schema)


def _parse_tool_choice(raw: Any) -> tuple[str | dict[str, str], bool]:
    """Maps Anthropic's tool_choice onto the engine's; returns (choice, parallel_tool_calls)."""
    if raw is None:
        return "auto", True
    if not isinstance(raw, dict):
        raise _invalid("tool_choice: Input should be a valid dictionary")
    kind = raw.get("type")
    if kind not in TOOL_CHOICE_TYPES:
        raise _invalid(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    parallel = not raw.get("disable_parallel_tool_use", False)
    if kind == "tool":
        if not isinstance(raw.get("name"), str):
            raise _invalid("tool_choice.tool.name: Field required")
        return {"name": raw["name"]}, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[kind], parallel


def _check_sampling(body: dict[str, Any]) -> None:
    for key, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"{key}: Input should be a valid number")
        if value < low:
            raise _invalid(f"{key}: Input should be greater than or equal to {low}")
        if value > high:
            raise _invalid(f"{key}: Input should be less than or equal to {high}")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise _invalid("top_k: Input should be greater than or equal to 0")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid("stream: Input should be a valid boolean")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid("metadata: Input should be a valid dictionary")


def _check_thinking(thinking: Any, max_tokens: int | None, temperature: Any) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
        raise _invalid(
            "thinking: Input tag found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'"
        )
    if thinking["type"] != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        raise _invalid(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}"
        )
    if max_tokens is not None and max_tokens <= budget:
        raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if temperature is not None and temperature != 1:
        raise _invalid("`temperature` may only be set to 1 when thinking is enabled.")


def _parse_stop_sequences(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _invalid("stop_sequences: Input should be a valid list of strings")
    return raw


def _output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """Structured outputs: ``output_config.format`` (or the older ``output_format``) json_schema."""
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _invalid("output_config.format.schema: Field required")
    return schema


# ---------------------------------------------------------------------------------------------
# Responses


def _message_id() -> str:
    return "msg_" + random_hex()


def _content_blocks(choice: MockChoice) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": choice.text}] if choice.text else []
    blocks.extend(
        {"type": "tool_use", "id": "toolu_" + c.id, "name": c.name, "input": c.arguments} for c in choice.tool_calls
    )
    return blocks


def _stop(choice: MockChoice) -> tuple[str, str | None]:
    if choice.stop_sequence is not None:
        return "stop_sequence", choice.stop_sequence
    return _STOP_REASONS[choice.finish_reason], None


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": SERVICE_TIER,
    }


def render_message(body: Mapping[str, Any], out: MockOutput) -> dict[str, Any]:
    """A ``message`` object exactly as Anthropic returns it (Anthropic has no ``n``: choice 0)."""
    choice = out.choices[0]
    stop_reason, stop_sequence = _stop(choice)
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": _content_blocks(choice),
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage(out.prompt_tokens, out.completion_tokens),
    }


def render_stream(body: Mapping[str, Any], out: MockOutput, chunks: int) -> Iterator[dict[str, Any]]:
    """The raw events of a streamed message; each event's SSE name is its ``type``."""
    choice = out.choices[0]
    message = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(out.prompt_tokens, 1),
    }
    yield {"type": "message_start", "message": message}
    blocks = _content_blocks(choice)
    if not blocks:
        yield {"type": "ping"}
    arguments = [c.arguments_json for c in choice.tool_calls]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], chunks)]
            block = {"type": "text", "text": ""}
        else:
            # Anthropic opens a tool input with an empty fragment before the JSON pieces
            pieces = ["", *split_text(arguments.pop(0), chunks)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            block = {**block, "input": {}}
        yield from _block_events(index, block, deltas)
    stop_reason, stop_sequence = _stop(choice)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": {"output_tokens": out.completion_tokens},
    }
    yield {"type": "message_stop"}


def _block_events(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield {"type": "content_block_start", "index": index, "content_block": start}
    if index == 0:
        yield {"type": "ping"}  # Anthropic pings once, right after the first block opens
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def render_count_tokens(inp: MockInput) -> dict[str, Any]:
    """Same count as ``usage.input_tokens`` of a message for that input."""
    return {"input_tokens": count_prompt_tokens(inp)}


_MODEL_CREATED = datetime(2025, 1, 1, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def render_models(models: Sequence[str]) -> dict[str, Any]:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": _MODEL_CREATED, "lifecycle": "active"}
        for m in models
    ]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
