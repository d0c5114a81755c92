"""OpenAI chat completions <-> AWS Bedrock Converse: pure translation functions (no I/O).

Requests: `to_converse_request` (the model id travels in the URL: `model_path`). Responses:
`from_converse_response`. Streams: `ConverseStreamTranslator`, fed one decoded event-stream event
at a time. Errors: `bedrock_error` (HTTP) and `stream_exception` (exception frames). Embeddings:
Titan `invoke` bodies, one per input.

Whatever Converse cannot do faithfully is a 400 naming the limitation: n > 1, logprobs, audio,
temperature > 1, `response_format: json_object`, `parallel_tool_calls: false`, and http(s) image
URLs (Converse takes image bytes or S3 locations, never URLs).

Converse has no "none" tool choice and rejects toolUse/toolResult blocks without a toolConfig, so
when no tools are on offer (none given, or tool_choice "none") earlier tool calls and results are
sent as plain text: the model still sees them and cannot call a tool.
`response_format: json_schema` is Converse structured output (`outputConfig.textFormat`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson

from aimm_gateway.canonical import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    EmbeddingRequest,
    FunctionDef,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Usage,
    new_completion_id,
)
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.translate_common import (
    ToolCallStream,
    TurnFormat,
    alternating_turns,
    answer_text,
    has_text,
    object_schema,
    openai_choice,
    openai_completion,
    openai_embeddings,
    reject_json_object,
    reject_logprobs_and_audio,
    require_one_choice_and_unit_temperature,
    sampling,
    text_only,
    tool_arguments,
)

_INFERENCE = {"output_limit": "maxTokens", "temperature": "temperature", "top_p": "topP", "stop": "stopSequences"}
SIGNING_NAME = "bedrock"  # the SigV4 service name of bedrock-runtime
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_S3_IMAGE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif", ".webp": "webp"}
# Characters left literal in the model id path segment: unreserved, sub-delims, ':' and '@'. Both
# pooled clients send them unchanged (yarl would decode a '%3A'), so the signed path is the sent path.
_PATH_SAFE = "-._~!$&'()*+,;=:@"
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_MALFORMED = frozenset({"malformed_model_output", "malformed_tool_use"})
_TOOL_ID_OK = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
_TOOL_ID_BAD_CHAR = re.compile(r"[^a-zA-Z0-9_.:-]")
# Exception frames of a ConverseStream: (status, kind, retryable).
_STREAM_EXCEPTIONS: dict[str, tuple[int, str, bool]] = {
    "throttlingException": (429, "rate_limited", True),
    "serviceUnavailableException": (503, "overloaded", True),
    "modelStreamErrorException": (502, "http", True),
    "internalServerException": (502, "http", True),
    "modelTimeoutException": (504, "timeout", True),
    "validationException": (400, "invalid_request", False),
}


def model_path(model_id: str, operation: str) -> str:
    """`/model/{modelId}/{operation}`; '/' in ARNs is escaped so the id stays one segment."""
    return f"/model/{quote(model_id, safe=_PATH_SAFE)}/{operation}"


# ---------------------------------------------------------------------------------------------
# Request


def to_converse_request(req: ChatRequest) -> dict[str, Any]:
    """The Converse / ConverseStream body for a validated OpenAI chat request (same for both)."""
    _reject_unsupported(req)
    tools_on = bool(req.tools) and req.tool_choice != "none"
    system, messages = alternating_turns(req.messages, _TURNS if tools_on else _TURNS_WITHOUT_TOOLS)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference = sampling(req, _INFERENCE)
    if inference:
        body["inferenceConfig"] = inference
    if tools_on:
        body["toolConfig"] = _tool_config(req)
    if req.response_format is not None and req.response_format.type == "json_schema":
        body["outputConfig"] = {"textFormat": _text_format(req.response_format)}
    return body


def _reject_unsupported(req: ChatRequest) -> None:
    require_one_choice_and_unit_temperature(req, "Bedrock Converse models")
    if req.tools and req.parallel_tool_calls is False:
        raise InvalidRequest(
            "parallel_tool_calls: Bedrock Converse cannot limit a reply to one tool call", param="parallel_tool_calls"
        )
    reject_logprobs_and_audio(req, "Bedrock Converse models")
    reject_json_object(req, "Bedrock Converse models")


def _user_part(part: Any, i: int, j: int) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart):
        return {"image": _image_block(part.image_url.url, f"messages[{i}].content[{j}]")}
    raise InvalidRequest(
        f"messages[{i}].content[{j}]: content part type {part.type!r} is not supported for Bedrock models",
        param=f"messages[{i}].content[{j}]",
    )


def _image_block(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64":
            raise InvalidRequest(f"{where}.image_url.url: data URLs must be base64-encoded", param=where)
        fmt = IMAGE_FORMATS.get(media_type)
        if fmt is None:
            raise InvalidRequest(
                f"{where}.image_url.url: image type {media_type!r} is not supported for Bedrock models "
                f"(use one of {', '.join(sorted(IMAGE_FORMATS))})",
                param=where,
            )
        # JSON carries the blob base64-encoded, so the data URL's payload goes as is.
        return {"format": fmt, "source": {"bytes": data}}
    if url.startswith("s3://"):
        return _s3_image(url, where)
    if url.startswith(("https://", "http://")):
        raise InvalidRequest(
            f"{where}.image_url.url: Bedrock Converse does not fetch image URLs; send the image inline as a "
            "base64 data: URL (or an s3:// location)",
            param=where,
        )
    raise InvalidRequest(f"{where}.image_url.url: must be a data: or s3:// URL for Bedrock models", param=where)


def _s3_image(url: str, where: str) -> dict[str, Any]:
    dot = url.rfind(".")
    fmt = _S3_IMAGE_FORMATS.get(url[dot:].lower()) if dot > 0 else None
    if fmt is None:
        raise InvalidRequest(
            f"{where}.image_url.url: the image format of an s3:// URL comes from its extension "
            f"({', '.join(sorted(_S3_IMAGE_FORMATS))})",
            param=where,
        )
    return {"format": fmt, "source": {"s3Location": {"uri": url}}}


def _text_block(text: str) -> dict[str, Any]:
    return {"text": text}


def _tool_uses(msg: Message, i: int) -> list[dict[str, Any]]:
    blocks = []
    for k, call in enumerate(msg.tool_calls or ()):
        where = f"messages[{i}].tool_calls[{k}].function.arguments"
        arguments = tool_arguments(call.function.arguments, where, "Bedrock")
        blocks.append({"toolUse": {"toolUseId": _tool_id(call.id), "name": call.function.name, "input": arguments}})
    return blocks


def _tool_calls_as_text(msg: Message, i: int) -> list[dict[str, Any]]:
    # Without toolConfig, Converse rejects toolUse blocks: earlier calls are kept as text instead.
    return [
        {"text": f"[tool call {call.id}: {call.function.name}({call.function.arguments or '{}'})]"}
        for call in msg.tool_calls or ()
    ]


def _tool_id(call_id: str) -> str:
    # Converse ids must match [a-zA-Z0-9_.:-]{1,64}; ids minted elsewhere may not. The same rewrite
    # is applied to toolUse and toolResult, so the pair still matches.
    if _TOOL_ID_OK.fullmatch(call_id):
        return call_id
    return (_TOOL_ID_BAD_CHAR.sub("_", call_id) or "call")[:64]


def _tool_result(msg: Message, i: int) -> dict[str, Any]:
    content = [{"text": text}] if has_text(text := text_only(msg, i, "Bedrock")) else []
    return {"toolResult": {"toolUseId": _tool_id(msg.tool_call_id or ""), "content": content}}


def _tool_result_as_text(msg: Message, i: int) -> dict[str, Any]:
    return {"text": f"[result of tool call {msg.tool_call_id or ''}: {text_only(msg, i, 'Bedrock')}]"}


_TURNS = TurnFormat("Bedrock", _text_block, _user_part, _tool_result, _tool_uses)
_TURNS_WITHOUT_TOOLS = TurnFormat("Bedrock", _text_block, _user_part, _tool_result_as_text, _tool_calls_as_text)


def _tool_config(req: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {"tools": [_tool_spec(tool.function, k) for k, tool in enumerate(req.tools or ())]}
    choice = req.tool_choice
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice is not None and choice != "none":
        config["toolChoice"] = {"tool": {"name": choice.function.name}}
    return config


def _tool_spec(fn: FunctionDef, k: int) -> dict[str, Any]:
    schema = object_schema(fn.parameters, f"tools[{k}].function.parameters", "Bedrock")
    spec: dict[str, Any] = {
        "name": fn.name,
        "inputSchema": {"json": schema},
    }
    if fn.description:
        spec["description"] = fn.description
    if fn.strict:
        spec["strict"] = True
    return {"toolSpec": spec}


def _text_format(fmt: ResponseFormat) -> dict[str, Any]:
    spec = fmt.json_schema or {}
    schema = spec.get("schema")
    definition: dict[str, Any] = {
        # Converse takes the schema as a JSON string.
        "schema": orjson.dumps(schema if isinstance(schema, dict) else {"type": "object"}).decode()
    }
    for key in ("name", "description"):
        value = spec.get(key)
        if isinstance(value, str) and value:
            definition[key] = value
    return {"type": "json_schema", "structure": {"jsonSchema": definition}}


# ---------------------------------------------------------------------------------------------
# Response


def from_converse_response(data: dict[str, Any], model_name: str, *, request_id: str | None = None) -> ChatCompletion:
    """An OpenAI `chat.completion` for a Converse response."""
    message = (data.get("output") or {}).get("message") or {}
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if "text" in block:
            texts.append(block["text"] or "")
        elif "toolUse" in block:
            tool_calls.append(_tool_call(block["toolUse"]))
        # reasoningContent, citationsContent and the like have no place in an OpenAI message.
    finish = finish_reason(data.get("stopReason"), bool(tool_calls))
    choice = openai_choice(0, answer_text(texts, tool_calls), tool_calls, finish)
    usage = converse_usage(data.get("usage") or {})
    return openai_completion(completion_id(request_id), model_name, [choice], usage, "default")


def _tool_call(use: dict[str, Any]) -> dict[str, Any]:
    arguments = orjson.dumps(use.get("input") or {}).decode()
    return {"id": use["toolUseId"], "type": "function", "function": {"name": use["name"], "arguments": arguments}}


def completion_id(request_id: str | None) -> str:
    return f"chatcmpl-{request_id}" if request_id else new_completion_id()


def finish_reason(stop_reason: Any, has_tool_calls: bool) -> str:
    if stop_reason in _MALFORMED:
        # The model's output is unusable; another attempt may well succeed.
        raise UpstreamError(f"bedrock model output was malformed (stopReason {stop_reason})", kind="http")
    reason = _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    return "stop" if reason == "tool_calls" and not has_tool_calls else reason


def converse_usage(usage: dict[str, Any]) -> Usage:
    """Converse counts cached input apart from `inputTokens`; OpenAI's prompt_tokens includes it."""
    cache_read = usage.get("cacheReadInputTokens") or 0
    cache_write = usage.get("cacheWriteInputTokens") or 0
    return Usage(
        prompt_tokens=(usage.get("inputTokens") or 0) + cache_read + cache_write,
        completion_tokens=usage.get("outputTokens") or 0,
        cached_tokens=cache_read,
    )


# ---------------------------------------------------------------------------------------------
# Errors


def header(headers: dict[str, str], name: str) -> str | None:
    """A response header by case-insensitive name (aiohttp keeps the server's case, httpx lowers it)."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


def bedrock_error(provider: str, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
    """An HTTP error: `{"message": ...}` with the exception name in `x-amzn-ErrorType`."""
    kind = (header(headers, "x-amzn-ErrorType") or "").partition(":")[0]
    message = _error_message(body) or f"HTTP {status}"
    detail = f"{kind}: {message}" if kind else message
    if status == 424:
        # ModelErrorException: the model failed while processing; unlike other 4xx a retry may help.
        return UpstreamError(f"{provider} upstream error: {detail}", status=502, retryable=True, kind="http")
    return upstream_error(provider, status, headers, orjson.dumps({"message": detail}))


def _error_message(body: bytes) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode(errors="replace").strip() or None
    if isinstance(data, dict):
        message = data.get("message", data.get("Message"))
        return message if isinstance(message, str) else None
    return None


def stream_exception(provider: str, name: str, payload: bytes, error_message: str = "") -> UpstreamError:
    """An exception (or error) frame inside a 200 stream, as the UpstreamError its HTTP twin would give."""
    message = error_message or _error_message(payload) or name
    status, error_kind, retryable = _STREAM_EXCEPTIONS.get(name, (502, "http", True))
    text = f"{provider} stream error: {name}: {message}"
    if status == 429:
        return UpstreamError(text, status=429, retryable=True, kind=error_kind, type="rate_limit_error")
    if status == 400:
        return UpstreamError(text, status=400, retryable=False, kind=error_kind, type="invalid_request_error")
    return UpstreamError(text, status=status, retryable=retryable, kind=error_kind)


# ---------------------------------------------------------------------------------------------
# Stream


class ConverseStreamTranslator(ToolCallStream):
    """ConverseStream events in, OpenAI `chat.completion.chunk`s out.

    Converse numbers all content blocks, OpenAI numbers tool calls among tool calls, so block
    indexes are mapped. The answer ends at `messageStop`; usage follows in `metadata`, which sets
    `done`. Then `final_usage_chunk()`.
    """

    __slots__ = ("_raw_usage", "done", "stopped")

    def __init__(self, model_name: str, *, request_id: str | None = None) -> None:
        super().__init__(model_name, completion_id(request_id))
        self.stopped = False  # messageStop seen: the answer is complete
        self.done = False  # metadata seen: nothing more is due
        self._raw_usage: dict[str, Any] = {}

    @property
    def usage(self) -> Usage:
        return converse_usage(self._raw_usage)

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]:
        if event == "contentBlockDelta":
            return self._block_delta(data)
        if event == "contentBlockStart":
            return self._block_start(data)
        if event == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event == "messageStop":
            return self._message_stop(data)
        if event == "metadata":
            usage = data.get("usage")
            self._raw_usage = usage if isinstance(usage, dict) else {}
            self.done = True
        return []  # contentBlockStop, and event types added later

    def _block_start(self, data: dict[str, Any]) -> list[ChatChunk]:
        use = (data.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []  # tool results and images of server-side tools are not part of the OpenAI answer
        return self._open_call(data.get("contentBlockIndex", 0), use.get("toolUseId"), use.get("name"))

    def _block_delta(self, data: dict[str, Any]) -> list[ChatChunk]:
        delta = data.get("delta") or {}
        if delta.get("text"):
            return self._text(delta["text"])
        use = delta.get("toolUse")
        if not isinstance(use, dict) or not use.get("input"):
            return []  # reasoning and citation deltas, empty fragments
        return self._call_arguments(data.get("contentBlockIndex", 0), use["input"])

    def _message_stop(self, data: dict[str, Any]) -> list[ChatChunk]:
        self.stopped = True
        return self._finish(finish_reason(data.get("stopReason"), bool(self._tool_index)))


# ---------------------------------------------------------------------------------------------
# Embeddings (Titan text embeddings through InvokeModel)


def titan_inputs(req: EmbeddingRequest) -> list[str]:
    """The texts to embed; Titan takes text only, one per call."""
    raw = req.input
    texts = [raw] if isinstance(raw, str) else raw
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("input: Bedrock Titan embeddings take text, not token arrays", param="input")
    return [t for t in texts if isinstance(t, str)]


def titan_request(text: str, req: EmbeddingRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"inputText": text}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions  # Titan v2: 256, 512 or 1024
    return body


def from_titan_responses(responses: list[dict[str, Any]], model_name: str, encoding: str | None) -> dict[str, Any]:
    """OpenAI's embeddings list for one Titan response per input, in input order."""
    tokens = sum(int(r.get("inputTextTokenCount") or 0) for r in responses)
    return openai_embeddings([r.get("embedding") or [] for r in responses], model_name, tokens, encoding)
