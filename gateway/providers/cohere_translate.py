"""OpenAI chat completions <-> Cohere v2 chat: pure translation functions (no I/O).

Requests: `to_cohere_request`. Responses: `from_cohere_response`. Streams:
`CohereStreamTranslator`, fed one SSE event at a time. Embeddings: `to_cohere_embed_request` /
`from_cohere_embed_response` (`/v2/embed`).

Cohere's `tool_plan` (the text a model writes before calling tools) is the assistant's `content`
next to its tool calls, in both directions and in streams. Whatever Cohere cannot do faithfully is
a 400 naming the limitation: n > 1, logprobs, audio, temperature > 1, penalties outside 0..1, a
named tool_choice, `parallel_tool_calls: false`, response_format together with tools, and an
assistant message last (prefill).
"""

from __future__ import annotations

from typing import Any

from aimm_gateway.canonical import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    EmbeddingRequest,
    ImagePart,
    Message,
    TextPart,
    Usage,
    new_completion_id,
)
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from aimm_gateway.providers.translate_common import (
    ToolCallStream,
    answer_text,
    openai_choice,
    openai_completion,
    openai_embeddings,
    reject_logprobs_and_audio,
    require_one_choice_and_unit_temperature,
    sampling,
    text_only,
)

MAX_EMBED_TEXTS = 96  # per /v2/embed call
_SAMPLING = {
    "output_limit": "max_tokens",
    "temperature": "temperature",
    "top_p": "p",
    "stop": "stop_sequences",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
_FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}


# ---------------------------------------------------------------------------------------------
# Request


def to_cohere_request(req: ChatRequest, model: ModelConfig, stream: bool) -> dict[str, Any]:
    """The Cohere `POST /v2/chat` body for a validated OpenAI chat request."""
    _reject_unsupported(req)
    body: dict[str, Any] = {"model": model.upstream_model, "messages": _translate_messages(req.messages)}
    if req.tools:
        body["tools"] = [_tool(t.function.name, t.function.description, t.function.parameters) for t in req.tools]
        if any(t.function.strict for t in req.tools):
            body["strict_tools"] = True
        if req.tool_choice == "required":
            body["tool_choice"] = "REQUIRED"
        elif req.tool_choice == "none":
            body["tool_choice"] = "NONE"
    body.update(sampling(req, _SAMPLING))
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        schema = (fmt.json_schema or {}).get("schema")
        body["response_format"] = {"type": "json_object"}
        if isinstance(schema, dict):
            body["response_format"]["json_schema"] = schema
    if stream:
        body["stream"] = True
    return body


def _reject_unsupported(req: ChatRequest) -> None:
    require_one_choice_and_unit_temperature(req, "Cohere models")
    for name in ("frequency_penalty", "presence_penalty"):
        value = getattr(req, name)
        if value is not None and not 0 <= value <= 1:
            raise InvalidRequest(f"{name}: Cohere models accept 0 to 1, got {value:g}", param=name)
    _reject_tool_options(req)
    reject_logprobs_and_audio(req, "Cohere models")


def _reject_tool_options(req: ChatRequest) -> None:
    choice = req.tool_choice
    if choice is not None and not isinstance(choice, str):
        raise InvalidRequest(
            "tool_choice: Cohere cannot force a named function; use 'required' (any tool) or 'auto'",
            param="tool_choice",
        )
    if req.tools and req.parallel_tool_calls is False:
        raise InvalidRequest(
            "parallel_tool_calls: Cohere models cannot be limited to one tool call", param="parallel_tool_calls"
        )
    fmt = req.response_format
    if req.tools and fmt is not None and fmt.type != "text":
        raise InvalidRequest(
            "response_format: Cohere does not support a JSON response format together with tools",
            param="response_format",
        )


def _translate_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.role
        if role == "system" or role == "developer":
            if text := text_only(msg, i, "Cohere"):
                out.append({"role": "system", "content": text})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(msg, i)})
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": msg.tool_call_id, "content": text_only(msg, i, "Cohere")})
        elif (turn := _assistant(msg)) is not None:
            out.append(turn)
    if not out or out[-1]["role"] not in ("user", "tool"):
        raise InvalidRequest(
            "messages: Cohere models need the last message to be from the user or a tool "
            "(assistant prefill is not supported)",
            param="messages",
        )
    return out


def _user_content(msg: Message, i: int) -> str | list[dict[str, Any]]:
    content = msg.content
    if isinstance(content, str) or content is None:
        return content or ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.image_url.url}  # Cohere takes web URLs and data URIs
            if part.image_url.detail is not None:
                image["detail"] = part.image_url.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(
                f"messages[{i}].content[{j}]: content part type {part.type!r} is not supported for Cohere models",
                param=f"messages[{i}].content[{j}]",
            )
    return parts


def _assistant(msg: Message) -> dict[str, Any] | None:
    text = msg.text()
    if not msg.tool_calls:
        return {"role": "assistant", "content": text} if text else None  # Cohere rejects empty turns
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in msg.tool_calls
    ]
    turn: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    if text:
        turn["tool_plan"] = text  # the text next to tool calls is Cohere's plan
    return turn


def _tool(name: str, description: str | None, parameters: dict[str, Any] | None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name, "parameters": parameters or {"type": "object", "properties": {}}}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


# ---------------------------------------------------------------------------------------------
# Response


def from_cohere_response(data: dict[str, Any], model_name: str) -> ChatCompletion:
    """An OpenAI `chat.completion` for a Cohere v2 chat response."""
    message = data.get("message") or {}
    texts = [c.get("text") or "" for c in message.get("content") or () if c.get("type") == "text"]
    tool_calls = [_tool_call(c) for c in message.get("tool_calls") or ()]
    if tool_calls and not texts and message.get("tool_plan"):
        texts = [message["tool_plan"]]
    finish = finish_reason(data.get("finish_reason"), bool(tool_calls))
    choice = openai_choice(0, answer_text(texts, tool_calls), tool_calls, finish)
    return openai_completion(
        completion_id(data.get("id")), model_name, [choice], cohere_usage(data.get("usage")), "default"
    )


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    return {
        "id": call.get("id") or "",
        "type": "function",
        "function": {"name": fn.get("name") or "", "arguments": fn.get("arguments") or "{}"},
    }


def completion_id(cohere_id: Any) -> str:
    return f"chatcmpl-{cohere_id}" if isinstance(cohere_id, str) and cohere_id else new_completion_id()


def finish_reason(reason: Any, has_tool_calls: bool, error: Any = None) -> str:
    if reason == "ERROR" or error:
        # Generation failed upstream; whatever came before is not a whole answer.
        raise UpstreamError(f"cohere generation failed: {error or 'finish_reason ERROR'}", kind="http")
    if reason == "TIMEOUT":
        raise UpstreamTimeout("cohere generation timed out (finish_reason TIMEOUT)")
    mapped = _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "stop" if mapped == "tool_calls" and not has_tool_calls else mapped


def cohere_usage(usage: Any) -> Usage:
    """Billed units when given (what Cohere charges), else the raw token counts."""
    if not isinstance(usage, dict):
        return Usage()
    counts = usage.get("billed_units") or usage.get("tokens") or {}
    return Usage(
        prompt_tokens=int(counts.get("input_tokens") or 0),
        completion_tokens=int(counts.get("output_tokens") or 0),
        cached_tokens=int(usage.get("cached_tokens") or 0),
    )


# ---------------------------------------------------------------------------------------------
# Stream


class CohereStreamTranslator(ToolCallStream):
    """Cohere v2 SSE events in, OpenAI `chat.completion.chunk`s out; `done` at message-end."""

    __slots__ = ("_thinking", "_usage", "done")

    def __init__(self, model_name: str) -> None:
        super().__init__(model_name, new_completion_id())
        self.done = False
        self._thinking: set[int] = set()  # content blocks holding reasoning, not answer text
        self._usage = Usage()

    @property
    def usage(self) -> Usage:
        return self._usage

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]:
        kind = event if event != "message" else str(data.get("type", ""))
        if kind == "content-delta":
            return self._content_delta(data)
        if kind == "tool-call-delta":
            return self._tool_call_delta(data)
        if kind == "tool-plan-delta":
            return self._text(_message_delta(data).get("tool_plan"))
        if kind == "content-start":
            return self._content_start(data)
        if kind == "tool-call-start":
            return self._tool_call_start(data)
        if kind == "message-start":
            self.completion_id = completion_id(data.get("id"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message-end":
            return self._message_end(data)
        return []  # content-end, tool-call-end, citations, debug, and event types added later

    def _content_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        content = _message_delta(data).get("content") or {}
        if content.get("type") == "thinking":
            self._thinking.add(data.get("index", 0))
            return []
        return self._text(content.get("text"))

    def _content_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        if data.get("index", 0) in self._thinking:
            return []
        return self._text((_message_delta(data).get("content") or {}).get("text"))

    def _tool_call_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        call = _message_delta(data).get("tool_calls") or {}
        fn = call.get("function") or {}
        return self._open_call(data.get("index", 0), call.get("id"), fn.get("name"), fn.get("arguments") or "")

    def _tool_call_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        fragment = ((_message_delta(data).get("tool_calls") or {}).get("function") or {}).get("arguments")
        return self._call_arguments(data.get("index", 0), fragment) if fragment else []

    def _message_end(self, data: dict[str, Any]) -> list[ChatChunk]:
        delta = data.get("delta") or {}
        reason = finish_reason(delta.get("finish_reason"), bool(self._tool_index), delta.get("error"))
        self._usage = cohere_usage(delta.get("usage"))
        self.done = True
        return self._finish(reason)


def _message_delta(data: dict[str, Any]) -> dict[str, Any]:
    message = (data.get("delta") or {}).get("message")
    return message if isinstance(message, dict) else {}


# ---------------------------------------------------------------------------------------------
# Embeddings


def to_cohere_embed_request(req: EmbeddingRequest, model: ModelConfig) -> dict[str, Any]:
    raw = req.input
    texts = [raw] if isinstance(raw, str) else raw
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("input: Cohere embeddings take text, not token arrays", param="input")
    if len(texts) > MAX_EMBED_TEXTS:
        raise InvalidRequest(
            f"input: Cohere embeds at most {MAX_EMBED_TEXTS} texts per request, got {len(texts)}", param="input"
        )
    body: dict[str, Any] = {
        "model": model.upstream_model,
        "texts": texts,
        "input_type": "search_document",  # OpenAI has no query/document distinction; documents are the common case
        "embedding_types": ["float"],
    }
    if req.dimensions is not None:
        body["output_dimension"] = req.dimensions
    return body


def from_cohere_embed_response(data: dict[str, Any], model_name: str, encoding: str | None) -> dict[str, Any]:
    vectors = (data.get("embeddings") or {}).get("float") or []
    tokens = int(((data.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0)
    return openai_embeddings(vectors, model_name, tokens, encoding)
