"""Anthropic Messages in, canonical (OpenAI chat-completions) out, and back: pure translation.

The opposite direction of `providers.anthropic_translate`. It lets Anthropic SDK clients and tools
built for Claude call any configured model through `POST /v1/messages`:

- `to_openai_request`: an Anthropic request body -> the canonical body (then `validate_chat`);
- `to_anthropic_message`: a canonical `chat.completion` -> an Anthropic `message`;
- `AnthropicStreamWriter`: canonical chunks in, Anthropic SSE events (name, data) out;
- `error_body`: any `GatewayError` in Anthropic's error shape.

What cannot be translated faithfully is a 400 naming the field (extended thinking, hosted tools,
documents, containers, MCP servers); hints with no effect on the answer (top_k, cache_control,
service_tier, speed, inference_geo, output_config.effort) are dropped. Errors name fields the
way Anthropic does (`messages.0.content.1.source`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from aimm_gateway.canonical import ChatChunk, ChatCompletion, Usage
from aimm_gateway.errors import GatewayError, InvalidRequest, UpstreamError

Event = tuple[str, dict[str, Any]]  # (SSE event name, data)

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
JSON_OUTPUT_NAME = "output"  # the json_schema name given to Anthropic structured outputs

# Fields translated below; fields dropped because they do not change what is asked; fields refused.
_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "output_format",
    }
)
_DROPPED = frozenset({"top_k", "cache_control", "service_tier", "speed", "inference_geo"})
_UNSUPPORTED = frozenset({"container", "mcp_servers", "context_management"})

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# ---------------------------------------------------------------------------------------------
# Errors


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status (4xx default: invalid_request_error)."""
    return _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(exc: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}
    if request_id:
        body["request_id"] = request_id
    return body


def _invalid(where: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {message}", param=where)


# ---------------------------------------------------------------------------------------------
# Request: Anthropic -> canonical


def to_openai_request(body: Any, *, for_count: bool = False) -> dict[str, Any]:
    """The canonical body for an Anthropic Messages request (`for_count`: no max_tokens needed)."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    _check_fields(body)
    out: dict[str, Any] = {"messages": _system(body.get("system")) + _messages(body.get("messages"))}
    if body.get("model") is not None:
        out["model"] = _string(body["model"], "model")
    if not for_count:
        out["max_tokens"] = _max_tokens(body.get("max_tokens"))
    if body.get("stream") is not None:
        out["stream"] = _boolean(body["stream"], "stream")
    _sampling(body, out)
    _tooling(body, out)
    _output_format(body, out)
    return out


def _check_fields(body: dict[str, Any]) -> None:
    for key in body:
        if key in _TRANSLATED or key in _DROPPED:
            continue
        if key in _UNSUPPORTED:
            raise _invalid(key, "not supported by this gateway")
        raise _invalid(key, "Extra inputs are not permitted")
    _check_thinking(body.get("thinking"))


def _check_thinking(thinking: Any) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict):
        raise _invalid("thinking", "Input should be a valid dictionary")
    if thinking.get("type") != "disabled":
        raise _invalid(
            "thinking",
            "extended thinking is not supported through this gateway (models answer through an "
            'OpenAI-shaped canonical API); omit it or use {"type": "disabled"}',
        )


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _invalid(where, "Input should be a valid string")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(where, "Input should be a valid boolean")
    return value


def _max_tokens(value: Any) -> int:
    if value is None:
        raise _invalid("max_tokens", "Field required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("max_tokens", "Input should be a valid integer")
    if value < 1:
        raise _invalid("max_tokens", "Input should be greater than or equal to 1")
    return value


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(key, "Input should be a valid number")
    if not 0 <= value <= high:
        raise _invalid(key, f"Input should be between 0 and {high:g}")
    return value


def _sampling(body: dict[str, Any], out: dict[str, Any]) -> None:
    for key in ("temperature", "top_p"):
        value = _number(body, key, 1)
        if value is not None:
            out[key] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _invalid("stop_sequences", "Input should be a valid list of strings")
        if stops:
            out["stop"] = stops
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _invalid("metadata", "Input should be a valid dictionary")
        if metadata.get("user_id") is not None:
            out["user"] = _string(metadata["user_id"], "metadata.user_id")


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise _invalid("system", "Input should be a valid string or list of text blocks")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid(f"system.{i}.type", "Input should be 'text'")
        texts.append(_string(block.get("text"), f"system.{i}.text"))
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


def _messages(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        raise _invalid("messages", "Field required")
    if not isinstance(raw, list) or not raw:
        raise _invalid("messages", "Input should be a non-empty list")
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _invalid(where, "Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(f"{where}.role", "Input should be 'user' or 'assistant'")
        blocks = _blocks(msg.get("content"), f"{where}.content")
        out.extend(_user_turn(blocks, where) if role == "user" else [_assistant_turn(blocks, where)])
    return out


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _invalid(where, "Input should be a valid string or list of content blocks")
    if not content:
        raise _invalid(where, "all messages must have non-empty content")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(f"{where}.{j}", "Input should be a content block with a 'type'")
    return content


def _user_turn(blocks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """Tool results become `tool` messages, placed first: OpenAI wants them right after the calls."""
    tools: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _string(block.get("text"), f"{at}.text")})
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            message, images = _tool_result(block, at)
            tools.append(message)
            tool_images.extend(images)
        else:
            raise _unsupported_block(kind, at, "user")
    user = tool_images + parts  # OpenAI tool messages hold text only: their images follow as user content
    return tools + ([{"role": "user", "content": _user_content(user)}] if user else [])


def _user_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _invalid(f"{where}.source", "Field required")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in IMAGE_MEDIA_TYPES:
            allowed = ", ".join(f"'{m}'" for m in IMAGE_MEDIA_TYPES)
            raise _invalid(f"{where}.source.media_type", f"Input should be one of {allowed}")
        data = _string(source.get("data"), f"{where}.source.data")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if kind == "url":
        return {"type": "image_url", "image_url": {"url": _string(source.get("url"), f"{where}.source.url")}}
    raise _invalid(f"{where}.source.type", f"image source {kind!r} is not supported (use 'base64' or 'url')")


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `tool` message with the result's text, plus any images it returned."""
    call_id = _string(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            at = f"{where}.content.{k}"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(_string(part.get("text"), f"{at}.text"))
            elif kind == "image":
                images.append(_image_part(part, at))
            else:
                raise _invalid(f"{at}.type", "tool results may hold text and image blocks only")
    elif content is not None:
        raise _invalid(f"{where}.content", "Input should be a valid string or list of blocks")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}"  # OpenAI has no error flag on tool results; the model reads it here
    if images:
        images.insert(0, {"type": "text", "text": f"Images returned by tool call {call_id}:"})
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _assistant_turn(blocks: list[dict[str, Any]], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(_string(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind in ("thinking", "redacted_thinking"):
            continue  # earlier turns' reasoning: not part of the answer other models need to see
        else:
            raise _unsupported_block(kind, at, "assistant")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    tool_input = block.get("input")
    if not isinstance(tool_input, dict):
        raise _invalid(f"{where}.input", "Input should be a valid dictionary")
    return {
        "id": _string(block.get("id"), f"{where}.id"),
        "type": "function",
        "function": {
            "name": _string(block.get("name"), f"{where}.name"),
            "arguments": orjson.dumps(tool_input).decode(),  # compact JSON, as OpenAI models emit it
        },
    }


def _unsupported_block(kind: str, where: str, role: str) -> InvalidRequest:
    return _invalid(f"{where}.type", f"content block type {kind!r} is not supported in {role} messages here")


def _tooling(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise _invalid("tool_choice", "Input should be a valid dictionary")
    kind = choice.get("type")
    if not tools:
        if kind in ("auto", "none"):
            return  # nothing to choose from; OpenAI refuses tool_choice without tools
        raise _invalid("tool_choice", f"tool_choice {kind!r} needs tools")
    out["tool_choice"] = _tool_choice(choice, kind)
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _tool_choice(choice: dict[str, Any], kind: Any) -> str | dict[str, Any]:
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return {"type": "function", "function": {"name": _string(choice.get("name"), "tool_choice.name")}}
    raise _invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _invalid("tools", "Input should be a valid list")
    return [_tool(tool, f"tools.{k}") for k, tool in enumerate(raw)]


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise _invalid(where, "Input should be a valid dictionary")
    if tool.get("type") not in (None, "custom"):
        raise _invalid(
            f"{where}.type",
            f"tool type {tool['type']!r} runs at Anthropic; only custom tools (name, input_schema) are supported",
        )
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise _invalid(f"{where}.input_schema", "Field required (a JSON schema object)")
    function: dict[str, Any] = {"name": _string(tool.get("name"), f"{where}.name"), "parameters": schema}
    if tool.get("description") is not None:
        function["description"] = _string(tool["description"], f"{where}.description")
    if tool.get("strict") is not None:
        function["strict"] = _boolean(tool["strict"], f"{where}.strict")
    return {"type": "function", "function": function}


def _output_format(body: dict[str, Any], out: dict[str, Any]) -> None:
    """Structured outputs (`output_config.format`, or the older `output_format`) -> json_schema."""
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise _invalid("output_config", "Input should be a valid dictionary")
    fmt, where = (config.get("format"), "output_config.format") if config else (None, "")
    if fmt is None and body.get("output_format") is not None:
        fmt, where = body["output_format"], "output_format"
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise _invalid(where, 'expected {"type": "json_schema", "schema": {...}}')
    out["response_format"] = {"type": "json_schema", "json_schema": {"name": JSON_OUTPUT_NAME, "schema": fmt["schema"]}}


# ---------------------------------------------------------------------------------------------
# Response: canonical -> Anthropic


def message_id(completion_id: Any) -> str:
    if isinstance(completion_id, str) and completion_id:
        return "msg_" + completion_id.removeprefix("chatcmpl-")
    return "msg_" + uuid.uuid4().hex[:24]


def stop_reason(
    finish: Any, matched: Any, stop_sequences: Sequence[str], *, has_tool_calls: bool = False
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). OpenAI's `stop` does not say whether a stop sequence ended the
    text; only when the upstream names the matched string (vLLM's `stop_reason`) is it `stop_sequence`."""
    if finish == "stop" and isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    reason = _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if reason == "end_turn" and has_tool_calls:
        # Some OpenAI-compatible servers say "stop" after tool calls; Anthropic clients run tools on tool_use.
        reason = "tool_use"
    return reason, None


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """OpenAI's prompt_tokens include cached tokens; Anthropic counts cache reads apart."""
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,  # the canonical usage does not report cache writes
    }


def to_anthropic_message(
    completion: ChatCompletion, *, model: str, stop_sequences: Sequence[str] = ()
) -> dict[str, Any]:
    """An Anthropic `message` for a canonical `chat.completion` (its first choice)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content = [{"type": "text", "text": text} for text in _answer_texts(message) if text]
    tool_calls = message.get("tool_calls") or []
    content += [_tool_use_block(call) for call in tool_calls]
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences, has_tool_calls=bool(tool_calls)
    )
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model") or model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(Usage.from_openai(completion.get("usage"))),
    }


def _answer_texts(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, list):  # some upstreams answer with content parts
        texts = [p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text"]
    else:
        texts = [content] if isinstance(content, str) else []
    refusal = message.get("refusal")
    return [*texts, refusal] if isinstance(refusal, str) else texts


def _tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    name = function.get("name") or ""
    return {
        "type": "tool_use",
        "id": call.get("id") or _tool_id(),
        "name": name,
        "input": tool_input(function.get("arguments"), name),
    }


def tool_input(arguments: Any, name: str) -> dict[str, Any]:
    """The tool call's arguments as the object Anthropic's `input` must be."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}  # some models send "" for a call without arguments
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        value = None
    if not isinstance(value, dict):
        raise UpstreamError(f"the model called tool {name!r} with arguments that are not a JSON object", kind="http")
    return value


def _tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


# ---------------------------------------------------------------------------------------------
# Stream: canonical chunks -> Anthropic SSE events


class AnthropicStreamWriter:
    """Canonical `chat.completion.chunk`s in, Anthropic Messages stream events out.

    Anthropic numbers content blocks 0, 1, 2, ... and sends them one after another: a text block,
    then one tool_use block per tool call (OpenAI's tool-call index -> block index). `feed` each
    chunk, then `finish()` once the upstream ends (stop reason and the final usage), or
    `error(exc)` if it fails. `input_tokens` is the estimate message_start reports before the
    upstream's count is known; message_delta carries the real counts.
    """

    __slots__ = (
        "_block",
        "_finish",
        "_input",
        "_matched",
        "_model",
        "_next",
        "_started",
        "_stops",
        "_tool_blocks",
        "_usage",
    )

    def __init__(self, model: str, *, input_tokens: int = 0, stop_sequences: Sequence[str] = ()) -> None:
        self._model = model
        self._input = input_tokens
        self._stops = tuple(stop_sequences)
        self._started = False
        self._block: tuple[int, str] | None = None  # the open block: (index, "text" | "tool_use")
        self._next = 0
        self._tool_blocks: dict[int, int] = {}
        self._finish: Any = None
        self._matched: Any = None
        self._usage: Usage | None = None

    def feed(self, chunk: ChatChunk) -> list[Event]:
        events = [] if self._started else self._start(chunk)
        if chunk.get("usage"):
            self._usage = Usage.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) == 0:  # Anthropic answers have one choice
                events += self._choice(choice)
        return events

    def finish(self) -> list[Event]:
        events = [] if self._started else self._start({})
        events += self._close_block()
        reason, sequence = stop_reason(self._finish, self._matched, self._stops, has_tool_calls=bool(self._tool_blocks))
        usage: dict[str, int] = {"output_tokens": 0}
        if self._usage is not None:
            usage = anthropic_usage(self._usage)
        events.append(
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage},
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    @staticmethod
    def error(exc: GatewayError) -> Event:
        return "error", error_body(exc)

    def _start(self, chunk: ChatChunk) -> list[Event]:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self._input, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _choice(self, choice: dict[str, Any]) -> list[Event]:
        delta = choice.get("delta") or {}
        events: list[Event] = []
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                events += self._text(text)
        for call in delta.get("tool_calls") or ():
            events += self._tool_call(call)
        if choice.get("finish_reason") is not None:
            self._finish, self._matched = choice["finish_reason"], choice.get("stop_reason")
        return events

    def _text(self, text: str) -> list[Event]:
        in_text = self._block is not None and self._block[1] == "text"
        events = [] if in_text else self._open({"type": "text", "text": ""})
        assert self._block is not None
        return [*events, _block_delta(self._block[0], {"type": "text_delta", "text": text})]

    def _tool_call(self, call: dict[str, Any]) -> list[Event]:
        position = call.get("index", 0)
        function = call.get("function") or {}
        events: list[Event] = []
        if position not in self._tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or _tool_id(),
                "name": function.get("name") or "",
                "input": {},
            }
            events = self._open(block)
            self._tool_blocks[position] = self._next - 1
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            # An interleaved fragment for an earlier call still names that call's block.
            delta = {"type": "input_json_delta", "partial_json": fragment}
            events.append(_block_delta(self._tool_blocks[position], delta))
        return events

    def _open(self, block: dict[str, Any]) -> list[Event]:
        events = self._close_block()
        index = self._next
        self._next += 1
        self._block = (index, block["type"])
        return [
            *events,
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}),
        ]

    def _close_block(self) -> list[Event]:
        if self._block is None:
            return []
        index, self._block = self._block[0], None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]


def _block_delta(index: int, delta: dict[str, Any]) -> Event:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
