"""OpenAI chat completions <-> Anthropic Messages: pure translation functions (no I/O).

Requests: `to_anthropic_request`. Responses: `from_anthropic_response`. Streams:
`AnthropicStreamTranslator`, fed one SSE event at a time. Whatever Anthropic cannot do faithfully
(n > 1, logprobs, temperature > 1, json_object, audio) is a 400 naming the limitation, so a
caller never gets a silently different answer.

`response_format: json_schema` is served with a forced tool call whose input schema is the
requested schema; the tool's input becomes the message content, in both directions and in streams.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from aimm_gateway.canonical import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    FunctionDef,
    ImagePart,
    Message,
    TextPart,
    Usage,
    new_completion_id,
)
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.translate_common import (
    ToolCallStream,
    TurnFormat,
    alternating_turns,
    answer_text,
    object_schema,
    openai_choice,
    openai_completion,
    reject_json_object,
    reject_logprobs_and_audio,
    require_one_choice_and_unit_temperature,
    sampling,
    text_only,
    tool_arguments,
)

ANTHROPIC_VERSION = "2023-06-01"
_SAMPLING = {"stop": "stop_sequences", "temperature": "temperature", "top_p": "top_p"}
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
JSON_TOOL_DEFAULT_NAME = "json_response"
_JSON_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool; its input is the answer and must match the schema."
)

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_ID_OK = re.compile(r"[a-zA-Z0-9_-]+")
_TOOL_ID_BAD_CHAR = re.compile(r"[^a-zA-Z0-9_-]")


# ---------------------------------------------------------------------------------------------
# Request


def to_anthropic_request(req: ChatRequest, model: ModelConfig, stream: bool) -> dict[str, Any]:
    """The Anthropic `POST /v1/messages` body for a validated OpenAI chat request."""
    _reject_unsupported(req)
    system, messages = alternating_turns(req.messages, _TURNS)
    body: dict[str, Any] = {
        "model": model.upstream_model,
        "max_tokens": req.output_limit or model.max_output_tokens,  # required by Anthropic
        "messages": messages,
    }
    if system:
        body["system"] = system
    body.update(sampling(req, _SAMPLING))
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.tools or req.response_format is not None:
        _add_tools(body, req)
    if stream:
        body["stream"] = True
    return body


def _reject_unsupported(req: ChatRequest) -> None:
    require_one_choice_and_unit_temperature(req, "Anthropic models")
    reject_logprobs_and_audio(req, "Anthropic models")
    reject_json_object(req, "Anthropic models")


def _user_part(part: Any, i: int, j: int) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "image", "source": _image_source(part.image_url.url, f"messages[{i}].content[{j}]")}
    raise InvalidRequest(
        f"messages[{i}].content[{j}]: content part type {part.type!r} is not supported for Anthropic models",
        param=f"messages[{i}].content[{j}]",
    )


def _image_source(url: str, where: str) -> dict[str, Any]:
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64":
            raise InvalidRequest(f"{where}.image_url.url: data URLs must be base64-encoded", param=where)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise InvalidRequest(
                f"{where}.image_url.url: image type {media_type!r} is not supported for Anthropic models "
                f"(use one of {', '.join(sorted(IMAGE_MEDIA_TYPES))})",
                param=where,
            )
        return {"type": "base64", "media_type": media_type, "data": data}
    raise InvalidRequest(f"{where}.image_url.url: must be an http(s) or data: URL", param=where)


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_uses(msg: Message, i: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_use",
            "id": _tool_id(call.id),
            "name": call.function.name,
            "input": tool_arguments(
                call.function.arguments, f"messages[{i}].tool_calls[{k}].function.arguments", "Anthropic"
            ),
        }
        for k, call in enumerate(msg.tool_calls or ())
    ]


def _tool_id(call_id: str) -> str:
    # Anthropic ids must match [a-zA-Z0-9_-]+; ids minted by other providers may not. The same
    # rewrite is applied to tool_use and tool_result, so the pair still matches.
    if _TOOL_ID_OK.fullmatch(call_id):
        return call_id
    return _TOOL_ID_BAD_CHAR.sub("_", call_id) or "call"


def _tool_result(msg: Message, i: int) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _tool_id(msg.tool_call_id or "")}
    text = text_only(msg, i, "Anthropic")
    if text:
        block["content"] = text
    return block


_TURNS = TurnFormat("Anthropic", _text_block, _user_part, _tool_result, _tool_uses)


def _add_tools(body: dict[str, Any], req: ChatRequest) -> None:
    tools = [_tool_param(tool.function, k) for k, tool in enumerate(req.tools or ())]
    json_tool = _json_tool(req, tools)
    if json_tool is not None:
        tools.append(json_tool)
        body["tool_choice"] = {"type": "tool", "name": json_tool["name"], "disable_parallel_tool_use": True}
    elif tools:
        choice = _tool_choice(req)
        if choice is not None:
            body["tool_choice"] = choice
    if tools:
        body["tools"] = tools


def _tool_param(fn: FunctionDef, k: int) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": fn.name,
        "input_schema": object_schema(fn.parameters, f"tools[{k}].function.parameters", "Anthropic"),
    }
    if fn.description:
        tool["description"] = fn.description
    if fn.strict:
        tool["strict"] = True
    return tool


def _tool_choice(req: ChatRequest) -> dict[str, Any] | None:
    choice = req.tool_choice
    no_parallel = req.parallel_tool_calls is False
    if choice is None:
        return {"type": "auto", "disable_parallel_tool_use": True} if no_parallel else None
    if choice == "none":
        return {"type": "none"}
    out: dict[str, Any]
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    else:
        out = {"type": "tool", "name": choice.function.name}
    if no_parallel:
        out["disable_parallel_tool_use"] = True
    return out


def json_tool_name(req: ChatRequest) -> str | None:
    """The forced tool that carries a `json_schema` answer, or None when the request has no such answer.

    With tool_choice required/named the model must call the caller's tool, so no JSON answer is due.
    """
    fmt = req.response_format
    if fmt is None or fmt.type != "json_schema":
        return None
    if req.tools and req.tool_choice is not None and req.tool_choice != "none" and req.tool_choice != "auto":
        return None
    name = (fmt.json_schema or {}).get("name")
    return name if isinstance(name, str) and name else JSON_TOOL_DEFAULT_NAME


def _json_tool(req: ChatRequest, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    name = json_tool_name(req)
    if name is None:
        return None
    if tools and req.tool_choice != "none":
        # The model would have to choose between calling a tool and answering in JSON: Anthropic
        # can force one tool, not "either of these", so the OpenAI meaning can't be kept.
        raise InvalidRequest(
            "response_format: json_schema together with tools (tool_choice auto) is not supported for "
            "Anthropic models; set tool_choice to none, required or a named tool",
            param="response_format",
        )
    if any(t["name"] == name for t in tools):
        raise InvalidRequest(
            f"response_format.json_schema.name: {name!r} clashes with a tool of the same name",
            param="response_format.json_schema.name",
        )
    spec = (req.response_format.json_schema if req.response_format else None) or {}
    schema = spec.get("schema")
    tool: dict[str, Any] = {
        "name": name,
        "description": spec.get("description") or _JSON_TOOL_DESCRIPTION,
        "input_schema": object_schema(
            schema if isinstance(schema, dict) else None, "response_format.json_schema.schema", "Anthropic"
        ),
    }
    if spec.get("strict"):
        tool["strict"] = True
    return tool


# ---------------------------------------------------------------------------------------------
# Response


def from_anthropic_response(msg: dict[str, Any], model_name: str, *, json_tool: str | None = None) -> ChatCompletion:
    """An OpenAI `chat.completion` for an Anthropic `message` (non-streaming)."""
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    json_text: str | None = None
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            args = orjson.dumps(block.get("input") or {}).decode()
            if json_tool is not None and json_text is None and block.get("name") == json_tool:
                json_text = args
            else:
                tool_calls.append(
                    {
                        "id": block["id"],
                        "type": "function",
                        "function": {"name": block["name"], "arguments": args},
                    }
                )
        # thinking / redacted_thinking / server-tool blocks have no place in an OpenAI message.
    content = json_text if json_text is not None else answer_text(texts, tool_calls)
    choice = openai_choice(0, content, tool_calls, finish_reason(msg.get("stop_reason"), bool(tool_calls)))
    raw_usage = msg.get("usage") or {}
    return openai_completion(
        completion_id(msg.get("id")), model_name, [choice], anthropic_usage(raw_usage), _service_tier(raw_usage)
    )


def completion_id(message_id: Any) -> str:
    if isinstance(message_id, str) and message_id:
        return "chatcmpl-" + message_id.removeprefix("msg_")
    return new_completion_id()


def finish_reason(stop_reason: Any, has_tool_calls: bool) -> str:
    reason = _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"  # the forced JSON-answer tool: the caller sees an ordinary answer
    return reason


def anthropic_usage(usage: dict[str, Any]) -> Usage:
    """Anthropic counts cached input apart from `input_tokens`; OpenAI's prompt_tokens includes it."""
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    details = usage.get("output_tokens_details") or {}
    return Usage(
        prompt_tokens=(usage.get("input_tokens") or 0) + cache_read + cache_write,
        # output_tokens includes thinking, as OpenAI's completion_tokens includes reasoning.
        completion_tokens=usage.get("output_tokens") or 0,
        cached_tokens=cache_read,
        reasoning_tokens=details.get("thinking_tokens") or 0,
    )


def _service_tier(usage: dict[str, Any]) -> str:
    return "priority" if usage.get("service_tier") == "priority" else "default"


def stream_error(provider: str, data: dict[str, Any]) -> UpstreamError:
    """An `event: error` inside a 200 stream, as the UpstreamError its HTTP twin would give."""
    raw = data.get("error")
    err: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind = err.get("type") or "api_error"
    text = f"{provider} stream error: {err.get('message') or kind}"
    if kind == "overloaded_error":
        return UpstreamError(text, status=503, retryable=True, kind="overloaded")
    if kind == "rate_limit_error":
        return UpstreamError(text, status=429, retryable=True, kind="rate_limited", type="rate_limit_error")
    if kind == "invalid_request_error":
        return UpstreamError(text, status=400, retryable=False, kind="invalid_request", type="invalid_request_error")
    return UpstreamError(text, status=502, retryable=kind == "api_error", kind="http")


# ---------------------------------------------------------------------------------------------
# Stream


class AnthropicStreamTranslator(ToolCallStream):
    """Anthropic Messages SSE events in, OpenAI `chat.completion.chunk`s out.

    OpenAI numbers tool calls among tool calls only, Anthropic numbers all content blocks, so
    block indexes are mapped. `done` turns true at `message_stop`; then `final_usage_chunk()`.
    """

    __slots__ = ("_json_block", "_json_tool", "_provider", "_raw_usage", "done")

    def __init__(self, model_name: str, *, json_tool: str | None = None, provider: str = "anthropic") -> None:
        super().__init__(model_name, new_completion_id())
        self.done = False
        self._provider = provider
        self._json_tool = json_tool
        self._json_block: int | None = None
        self._raw_usage: dict[str, Any] = {}

    @property
    def usage(self) -> Usage:
        return anthropic_usage(self._raw_usage)

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]:
        kind = event if event != "message" else data.get("type", "")
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            return self._message_start(data)
        if kind == "message_delta":
            return self._message_delta(data)
        if kind == "message_stop":
            self.done = True
            return self._finish("stop")
        if kind == "error":
            raise stream_error(self._provider, data)
        return []  # ping, content_block_stop, and event types added later

    def _message_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        message = data.get("message") or {}
        self.completion_id = completion_id(message.get("id"))
        self._update_usage(message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "text":
            return self._text(block.get("text"))
        if kind != "tool_use":
            return []  # thinking and server-tool blocks are not part of the OpenAI answer
        index = data.get("index", 0)
        if self._json_tool is not None and self._json_block is None and block.get("name") == self._json_tool:
            self._json_block = index
            return []
        return self._open_call(index, block.get("id"), block.get("name"))

    def _block_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._text(delta.get("text"))
        if kind != "input_json_delta":
            return []  # thinking, signature and citation deltas
        fragment = delta.get("partial_json")
        if not fragment:
            return []
        index = data.get("index", 0)
        if index == self._json_block:
            return [self._chunk({"content": fragment})]
        return self._call_arguments(index, fragment)

    def _message_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        self._update_usage(data.get("usage"))
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason is None:
            return []
        return self._finish(finish_reason(stop_reason, bool(self._tool_index)))

    def _update_usage(self, usage: Any) -> None:
        # message_delta carries cumulative counts; keep message_start's where a field is absent or null.
        if isinstance(usage, dict):
            self._raw_usage.update({k: v for k, v in usage.items() if v is not None})
