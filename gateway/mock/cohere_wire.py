"""Cohere v2 wire format: chat (``/v2/chat``), embeddings (``/v2/embed``) and ``/v1/models``.

Pure functions, usable in-process and by the HTTP mock app:

* :func:`check_headers` wants ``Authorization: Bearer`` (when auth is required), like the API;
* :func:`parse_request` validates a ``/v2/chat`` body the way Cohere does (model and messages
  required, roles, tool messages answer an earlier tool call, sampling ranges, tool_choice needs
  tools, no response_format together with tools, last message from the user or a tool) and returns
  a :class:`MockInput`; errors are ``{"id", "message"}`` with status 400;
* :func:`render_chat` / :func:`render_stream` shape an engine output as a v2 chat response / the
  v2 stream events (dicts; each event's SSE name is its ``type``);
* :func:`render_embed` answers ``/v2/embed``; :func:`render_models` ``GET /v1/models``.
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from .engine import (
    MockChoice,
    MockInput,
    MockMessage,
    MockOutput,
    MockTool,
    MockValidationError,
    embed,
    estimate_tokens,
)
from .openai_wire import IMAGE_TEXT, split_text
from .wire import bearer_token, for_status, optional_list, sse_named

__all__ = [
    "DEFAULT_MODELS",
    "CohereDialect",
    "check_headers",
    "error_body",
    "fault_error_body",
    "parse_request",
    "render_chat",
    "render_embed",
    "render_models",
    "render_stream",
    "stream_error_event",
]

DEFAULT_MODELS = (
    "command-a-03-2025",
    "command-r-plus-08-2024",
    "command-r-08-2024",
    "command-r7b-12-2024",
    "embed-v4.0",
    "embed-english-v3.0",
)
CHAT_PARAMS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
        "stream",
    }
)
EMBED_PARAMS = frozenset(
    {
        "model",
        "texts",
        "images",
        "inputs",
        "input_type",
        "embedding_types",
        "output_dimension",
        "truncate",
        "max_tokens",
    }
)
MAX_STOP_SEQUENCES = 5
MAX_EMBED_TEXTS = 96
EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
TEMPLATE_TOKENS = 64  # the chat template Cohere wraps a prompt in: counted in `tokens`, not billed
_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL", "content_filter": "COMPLETE"}


# ---------------------------------------------------------------------------------------------
# Errors


def error_body(message: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "message": message}


def _invalid(message: str, status: int = 400) -> MockValidationError:
    return MockValidationError(status, error_body(f"invalid request: {message}"))


_FAULT_MESSAGES: dict[int, str] = {
    400: "invalid request: injected by mock",
    401: "invalid api token",
    402: "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue",
    404: "model not found",
    422: "unprocessable entity",
    429: "You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial "
    "key for free or upgrade to a Production key with higher rate limits",
    498: "blocked input: please adjust your prompt and try again, as it may be a potential violation of our Usage "
    "Guidelines",
    499: "request cancelled by user",
    500: "internal server error, this has been reported to our developers",
    503: "service unavailable",
    504: "gateway timeout",
}


def fault_error_body(status: int) -> dict[str, Any]:
    return error_body(for_status(_FAULT_MESSAGES, status, "internal server error", "invalid request"))


def stream_error_event() -> dict[str, Any]:
    """The message-end Cohere sends when generation fails after the stream started."""
    return {"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}}


def check_headers(headers: Mapping[str, str], *, require_auth: bool) -> None:
    if require_auth and not bearer_token(headers.get("authorization")):
        raise MockValidationError(401, error_body("no api key supplied"))


def invalid_json_error(detail: str) -> MockValidationError:
    return _invalid(f"invalid json: {detail}")


# ---------------------------------------------------------------------------------------------
# Chat request validation


def _checked_body(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """Cohere's first checks on any body: an object, only known fields, a model."""
    if not isinstance(body, dict):
        raise _invalid("body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise _invalid(f"unknown field: parameter {key} is not a valid field")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model must be specified")
    return body


def parse_request(body: Any) -> MockInput:
    """Validate a ``/v2/chat`` body like Cohere and turn it into engine input."""
    body = _checked_body(body, CHAT_PARAMS)
    model = body["model"]
    tools = _parse_tools(body.get("tools"))
    messages = _parse_messages(body.get("messages"))
    _check_sampling(body)
    choice = _parse_tool_choice(body.get("tool_choice"), tools)
    schema, json_mode = _parse_response_format(body.get("response_format"), tools)
    return MockInput(
        model=model,
        messages=messages,
        tools=tools,
        tool_choice=choice,
        max_tokens=body.get("max_tokens"),
        stop=body.get("stop_sequences") or [],
        json_mode=json_mode,
        json_schema=schema,
    )


def _parse_messages(raw: Any) -> list[MockMessage]:
    if raw is None:
        raise _invalid("messages must be specified")
    if not isinstance(raw, list) or not raw:
        raise _invalid("messages must be a non-empty list")
    out: list[MockMessage] = []
    calls: dict[str, str] = {}  # tool call id -> tool name, to label results
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict):
            raise _invalid(f"messages[{i}] must be an object")
        role = msg.get("role")
        if role == "system":
            out.append(MockMessage("system", _text_content(msg.get("content"), f"messages[{i}]", allow_images=False)))
        elif role == "user":
            out.append(MockMessage("user", _text_content(msg.get("content"), f"messages[{i}]", allow_images=True)))
        elif role == "assistant":
            out.append(_assistant(msg, i, calls))
        elif role == "tool":
            out.append(_tool_result(msg, i, calls))
        else:
            raise _invalid(f"messages[{i}].role must be one of: system, user, assistant, tool")
    if raw[-1].get("role") not in ("user", "tool"):
        raise _invalid("the last message must be a user message or tool results")
    return out


def _text_content(content: Any, where: str, *, allow_images: bool) -> str:
    if isinstance(content, str):
        if not content.strip():
            raise _invalid("message must be at least 1 token long or tool results must be specified.")
        return content
    if not isinstance(content, list) or not content:
        raise _invalid(f"{where}.content must be a string or a non-empty list of content blocks")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and allow_images and isinstance((part.get("image_url") or {}).get("url"), str):
            texts.append(IMAGE_TEXT)
        else:
            raise _invalid(f"{where}.content[{j}]: invalid content block")
    return "\n".join(texts)


def _assistant(msg: dict[str, Any], i: int, calls: dict[str, str]) -> MockMessage:
    tool_calls = msg.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise _invalid(f"messages[{i}].tool_calls must be a list")
    for k, call in enumerate(tool_calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(call.get("id"), str) or not fn.get("name"):
            raise _invalid(f"messages[{i}].tool_calls[{k}] must have an id and a function name")
        calls[call["id"]] = fn["name"]
    content = msg.get("content")
    if content is None and not tool_calls:
        raise _invalid("all elements in history must have a message.")
    text = "" if content is None else _assistant_text(content, i)
    return MockMessage("assistant", text or str(msg.get("tool_plan") or ""))


def _assistant_text(content: Any, i: int) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(f"messages[{i}].content must be a string or a list of content blocks")
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def _tool_result(msg: dict[str, Any], i: int, calls: dict[str, str]) -> MockMessage:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(f"messages[{i}].tool_call_id must be specified for tool messages")
    if call_id not in calls:
        raise _invalid(f"tool call id {call_id} not found in previous tool calls")
    content = msg.get("content")
    if isinstance(content, list):
        text = "\n".join(_tool_part_text(p) for p in content)
    elif isinstance(content, str):
        text = content
    else:
        raise _invalid(f"messages[{i}].content must be a string or a list of content blocks")
    return MockMessage("tool", text, is_tool_result=True, tool_name=calls[call_id])


def _tool_part_text(part: Any) -> str:
    if isinstance(part, dict) and part.get("type") == "text":
        return str(part.get("text", ""))
    if isinstance(part, dict) and part.get("type") == "document":
        return orjson.dumps((part.get("document") or {}).get("data")).decode()
    raise _invalid("tool message content blocks must be of type text or document")


def _parse_tools(raw: Any) -> list[MockTool]:
    tools = []
    for k, tool in enumerate(optional_list(raw, lambda: _invalid("tools must be a list"))):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise _invalid(f"tools[{k}] must be of type function with a function definition")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(f"tools[{k}].function.name must be specified")
        params = fn.get("parameters")
        if not isinstance(params, dict):
            raise _invalid(f"tools[{k}].function.parameters must be a JSON schema object")
        tools.append(MockTool(name=name, parameters=params))
    return tools


def _check_sampling(body: dict[str, Any]) -> None:
    for key, low, high in (
        ("temperature", 0, 1),
        ("p", 0, 1),
        ("frequency_penalty", 0, 1),
        ("presence_penalty", 0, 1),
        ("k", 0, 500),
    ):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"{key} must be a number")
        if not low <= value <= high:
            raise _invalid(f"{key} must be between {low} and {high}")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _invalid("max_tokens must be a positive integer")
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise _invalid("stop_sequences must be a list of strings")
    if stop and len(stop) > MAX_STOP_SEQUENCES:
        raise _invalid(f"stop_sequences must have at most {MAX_STOP_SEQUENCES} elements")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _invalid("seed must be an integer")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _invalid("stream must be a boolean")


def _parse_tool_choice(raw: Any, tools: list[MockTool]) -> str:
    if raw is None:
        return "auto"
    if raw not in ("REQUIRED", "NONE"):
        raise _invalid("tool_choice must be one of: REQUIRED, NONE")
    if not tools:
        raise _invalid("tool_choice can only be specified together with tools")
    return "required" if raw == "REQUIRED" else "none"


def _parse_response_format(raw: Any, tools: list[MockTool]) -> tuple[dict[str, Any] | None, bool]:
    if raw is None:
        return None, False
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("text", "json_object"):
        raise _invalid("response_format.type must be one of: text, json_object")
    if kind == "text":
        if "json_schema" in raw:
            raise _invalid("response_format.json_schema must not be specified when the type is text")
        return None, False
    if tools:
        raise _invalid("response_format is not supported together with tools")
    schema = raw.get("json_schema")
    if schema is not None and not isinstance(schema, dict):
        raise _invalid("response_format.json_schema must be a JSON schema object")
    return schema, True


# ---------------------------------------------------------------------------------------------
# Chat responses


def _tool_plan(choice: MockChoice) -> str:
    return f"I will call {' and '.join(c.name for c in choice.tool_calls)} to answer this."


def _tool_calls(choice: MockChoice) -> list[dict[str, Any]]:
    return [
        {"id": f"{c.name}_{c.id[:12]}", "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
        for c in choice.tool_calls
    ]


def _finish(choice: MockChoice) -> str:
    return "STOP_SEQUENCE" if choice.stop_sequence is not None else _FINISH[choice.finish_reason]


def _usage(out: MockOutput) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": out.prompt_tokens, "output_tokens": out.completion_tokens},
        "tokens": {"input_tokens": out.prompt_tokens + TEMPLATE_TOKENS, "output_tokens": out.completion_tokens},
    }


def render_chat(body: Mapping[str, Any], out: MockOutput) -> dict[str, Any]:
    """A v2 chat response as Cohere returns it (no `n`: choice 0)."""
    choice = out.choices[0]
    message: dict[str, Any] = {"role": "assistant"}
    if choice.tool_calls:
        message["tool_plan"] = _tool_plan(choice)
        message["tool_calls"] = _tool_calls(choice)
    else:
        message["content"] = [{"type": "text", "text": choice.text}] if choice.text else []
    return {"id": str(uuid.uuid4()), "message": message, "finish_reason": _finish(choice), "usage": _usage(out)}


def render_stream(body: Mapping[str, Any], out: MockOutput, chunks: int) -> Iterator[dict[str, Any]]:
    """The v2 stream events (without SSE framing); the SSE event name is each event's `type`."""
    choice = out.choices[0]
    yield {"id": str(uuid.uuid4()), "type": "message-start", "delta": {"message": {"role": "assistant"}}}
    if choice.tool_calls:
        yield from _tool_events(choice, chunks)
    elif choice.text:
        yield {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}
        for piece in split_text(choice.text, chunks):
            yield {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}}
        yield {"type": "content-end", "index": 0}
    yield {"type": "message-end", "delta": {"finish_reason": _finish(choice), "usage": _usage(out)}}


def _tool_events(choice: MockChoice, chunks: int) -> Iterator[dict[str, Any]]:
    for piece in split_text(_tool_plan(choice), chunks):
        yield {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}
    for index, call in enumerate(_tool_calls(choice)):
        fn = call["function"]
        header = {**call, "function": {"name": fn["name"], "arguments": ""}}
        yield {"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": header}}}
        for piece in split_text(fn["arguments"], chunks):
            fragment = {"function": {"arguments": piece}}
            yield {"type": "tool-call-delta", "index": index, "delta": {"message": {"tool_calls": fragment}}}
        yield {"type": "tool-call-end", "index": index}


# ---------------------------------------------------------------------------------------------
# Embeddings and models


def render_embed(body: Any) -> dict[str, Any]:
    """Validate a ``/v2/embed`` body and answer it with the requested embedding types."""
    body = _checked_body(body, EMBED_PARAMS)
    model = body["model"]
    texts = _embed_texts(body.get("texts"))
    if body.get("input_type") not in INPUT_TYPES:
        raise _invalid("valid input_type must be provided with the provided model")
    types = body.get("embedding_types") or ["float"]
    if not isinstance(types, list) or any(t not in EMBEDDING_TYPES for t in types):
        raise _invalid(f"embedding_types must be a list of: {', '.join(EMBEDDING_TYPES)}")
    vectors = embed(texts, _dimensions(model, body.get("output_dimension")))
    tokens = sum(estimate_tokens(t) for t in texts)
    return {
        "id": str(uuid.uuid4()),
        "embeddings": {t: [_encode(v, t) for v in vectors] for t in types},
        "texts": texts,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type",
    }


def _embed_texts(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise _invalid("texts must be a non-empty list of strings")
    if len(raw) > MAX_EMBED_TEXTS:
        raise _invalid(f"texts must have at most {MAX_EMBED_TEXTS} elements, got {len(raw)}")
    if not all(isinstance(t, str) and t for t in raw):
        raise _invalid("texts must be a list of non-empty strings")
    return raw


def _dimensions(model: str, requested: Any) -> int:
    native = 1536 if "v4" in model else 384 if "light" in model else 1024
    if requested is None:
        return native
    if "v4" not in model:
        raise _invalid("output_dimension is only supported for embed-v4.0 and newer models")
    if requested not in (256, 512, 1024, 1536):
        raise _invalid("output_dimension must be one of 256, 512, 1024, 1536")
    return int(requested)


def _encode(vector: list[float], kind: str) -> Any:
    if kind == "float":
        return vector
    if kind == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    if kind in ("int8", "uint8"):
        scale = 127 / max(1e-9, max(map(abs, vector)))
        signed = [max(-128, min(127, round(v * scale))) for v in vector]
        return signed if kind == "int8" else [s + 128 for s in signed]
    bits = [1 if v > 0 else 0 for v in vector]  # binary: 8 signs per byte
    packed = [int("".join(map(str, bits[i : i + 8])).ljust(8, "0"), 2) for i in range(0, len(bits), 8)]
    return packed if kind == "ubinary" else [b - 128 for b in packed]


def render_models(models: Sequence[str]) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": m,
                "endpoints": ["embed"] if m.startswith("embed") else ["chat"],
                "finetuned": False,
                "context_length": 128000.0 if not m.startswith("embed") else 512.0,
                "tokenizer_url": f"https://storage.googleapis.com/cohere-public/tokenizers/{m}.json",
                "default_endpoints": [],
            }
            for m in models
        ]
    }


# ---------------------------------------------------------------------------------------------
# HTTP dialect


class CohereDialect:
    """What the Cohere mock does differently at the HTTP level; see the server's dialects."""

    name = "cohere"
    done_frame: bytes | None = None  # the stream ends with message-end

    def request_id_headers(self, request_id: str | None = None) -> dict[str, str]:
        return {"x-debug-trace-id": request_id or uuid.uuid4().hex}

    def check_request(self, request: Any, require_auth: bool) -> None:
        check_headers(request.headers, require_auth=require_auth)

    bad_request = staticmethod(_invalid)
    invalid_json = staticmethod(invalid_json_error)
    fault_body = staticmethod(fault_error_body)

    def rate_limit_headers(self, retry_after_ms: int) -> dict[str, str]:
        return {"x-trial-endpoint-call-limit": "20", "x-trial-endpoint-call-remaining": "0"}

    def frame(self, event: dict[str, Any]) -> bytes:
        return sse_named(event)

    def error_frame(self) -> bytes:
        return self.frame(stream_error_event())
