"""OpenAI chat completions <-> Google Gemini `generateContent`: pure translation functions (no I/O).

Requests: `to_gemini_request`. Responses: `from_gemini_response`. Streams: `GeminiStreamTranslator`,
fed one SSE `data:` object (a partial GenerateContentResponse) at a time. Embeddings:
`to_batch_embed_request` / `from_batch_embed_response` (Gemini API) and `to_vertex_predict_request` /
`from_vertex_predict_response` (Vertex AI). The same bodies serve Gemini on Vertex AI.

Whatever Gemini cannot do faithfully (logprobs, logit_bias, audio output, file ids, legacy
`functions`) is a 400 naming the limitation, so a caller never gets a silently different answer.

Gemini function calls carry no ids, so ids are minted (`call_<24 hex>`); a tool message is sent
back as a `functionResponse` under the function *name*, recovered from the earlier assistant tool
call with that id. A call's `thoughtSignature` (Gemini 3 insists on getting it back) rides inside the
id as `call_<24 hex>_ts_<base64url>`, so the round trip needs no server-side state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import orjson

from aimm_gateway.canonical import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    EmbeddingRequest,
    FunctionDef,
    ImagePart,
    Message,
    TextPart,
    Usage,
    new_completion_id,
)
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import InvalidRequest, UpstreamError
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.translate_common import (
    ChunkStream,
    answer_text,
    openai_choice,
    openai_completion,
    openai_embeddings,
    reject_logprobs_and_audio,
    sampling,
    text_only,
    tool_arguments,
)
from aimm_gateway.tokens import estimate_text_tokens

JSON_MIME = "application/json"
_SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "output_limit": "maxOutputTokens",
    "stop": "stopSequences",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_CONTENT_FILTER = "content_filter"
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": _CONTENT_FILTER,
    "RECITATION": _CONTENT_FILTER,
    "PROHIBITED_CONTENT": _CONTENT_FILTER,
    "BLOCKLIST": _CONTENT_FILTER,
    "SPII": _CONTENT_FILTER,
    "IMAGE_SAFETY": _CONTENT_FILTER,
    "IMAGE_PROHIBITED_CONTENT": _CONTENT_FILTER,
    "MODEL_ARMOR": _CONTENT_FILTER,
}
# Gemini 2.5 thinks within a token budget; Google's own OpenAI layer maps efforts to these budgets.
_THINKING_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
_THINKING_LEVEL = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}
_IMAGE_EXT_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
}
_ID_HEX = 24
_SIGNATURE_MARK = "_ts_"
_ID_SIGNED_PREFIX_LEN = len("call_") + _ID_HEX + len(_SIGNATURE_MARK)

# JSON Schema keywords Gemini's OpenAPI-subset Schema understands under the same name.
_SCHEMA_COPY = (
    "title", "description", "minItems", "maxItems", "minLength", "maxLength", "pattern",
    "minimum", "maximum", "minProperties", "maxProperties",
)  # fmt: skip
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "INTEGER": frozenset({"int32", "int64"}),
    "NUMBER": frozenset({"float", "double"}),
}
_MAX_SCHEMA_DEPTH = 32
_GEMINI_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"})
_SCHEMA_COMBINATORS = ("$ref", "anyOf", "oneOf", "allOf")


# ---------------------------------------------------------------------------------------------
# Request


def to_gemini_request(req: ChatRequest, model: ModelConfig) -> dict[str, Any]:
    """The `generateContent` / `streamGenerateContent` body for a validated OpenAI chat request."""
    _reject_unsupported(req)
    system, contents = _translate_messages(req.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_function_declaration(t.function, k)
                                                   for k, t in enumerate(req.tools)]}]  # fmt: skip
        tool_config = _tool_config(req)
        if tool_config is not None:
            body["toolConfig"] = tool_config
    config = _generation_config(req, model.upstream_model)
    if config:
        body["generationConfig"] = config
    return body


def _reject_unsupported(req: ChatRequest) -> None:
    reject_logprobs_and_audio(req, "Gemini chat models")
    extra = req.model_extra
    if not extra:
        return
    if extra.get("logit_bias"):
        raise InvalidRequest("logit_bias: Gemini models do not support token biases", param="logit_bias")
    if extra.get("functions") is not None or extra.get("function_call") is not None:
        raise InvalidRequest("functions: the legacy functions API is not supported; use tools", param="functions")
    if extra.get("web_search_options") is not None:
        raise InvalidRequest(
            "web_search_options: not supported for Gemini models by this gateway", param="web_search_options"
        )


def _generation_config(req: ChatRequest, model_name: str) -> dict[str, Any]:
    config = sampling(req, _SAMPLING)
    if req.n is not None and req.n > 1:
        config["candidateCount"] = req.n
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = JSON_MIME
        if fmt.type == "json_schema":
            config.update(_response_schema(fmt.json_schema or {}))
    effort = (req.model_extra or {}).get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = _thinking_config(effort, model_name)
    return config


def _response_schema(spec: dict[str, Any]) -> dict[str, Any]:
    schema = spec.get("schema")
    if not isinstance(schema, dict) or not schema:
        return {}  # no schema given: plain JSON mode
    converted = gemini_schema(schema, ordered=True)
    if converted is not None:
        return {"responseSchema": converted}
    # Outside the OpenAPI subset (free-form objects, recursion): Gemini also takes JSON Schema as is.
    return {"responseJsonSchema": schema}


def _thinking_config(effort: Any, model_name: str) -> dict[str, Any]:
    if effort not in _THINKING_BUDGET:
        raise InvalidRequest(
            f"reasoning_effort: unknown value {effort!r} (use one of {', '.join(_THINKING_BUDGET)})",
            param="reasoning_effort",
        )
    if "gemini-3" not in model_name:
        return {"thinkingBudget": _THINKING_BUDGET[effort]}
    if effort == "none":
        raise InvalidRequest(
            "reasoning_effort: Gemini 3 models always think; use 'minimal' or 'low'", param="reasoning_effort"
        )
    return {"thinkingLevel": _THINKING_LEVEL[effort]}


def _translate_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System text goes to `systemInstruction`; consecutive same-role turns are merged."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # OpenAI tool call id -> function name, for tool results
    for i, msg in enumerate(messages):
        role = msg.role
        if role == "system" or role == "developer":
            text = text_only(msg, i, "Gemini")
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            gemini_role, parts = "user", _user_parts(msg, i)
        elif role == "assistant":
            gemini_role, parts = "model", _model_parts(msg, i, call_names)
        else:
            gemini_role, parts = "user", [_function_response(msg, i, call_names)]
        if not parts:
            continue  # an empty assistant turn says nothing; Gemini rejects empty parts
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    if not contents:
        raise InvalidRequest("messages: Gemini models need at least one user or assistant message", param="messages")
    return system, contents


def _user_parts(msg: Message, i: int) -> list[dict[str, Any]]:
    content = msg.content
    if isinstance(content, str):
        parts = [{"text": content}] if content else []
    else:
        parts = [_user_part(part, f"messages[{i}].content[{j}]") for j, part in enumerate(content or ())]
        parts = [p for p in parts if p.get("text") != ""]  # Gemini rejects empty text parts
    if not parts:
        raise InvalidRequest(f"messages[{i}].content: empty; Gemini models need non-empty user content",
                             param=f"messages[{i}].content")  # fmt: skip
    return parts


def _user_part(part: Any, where: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart):
        return _media_part(part.image_url.url, f"{where}.image_url.url")
    extra = part.model_extra or {}
    if part.type == "input_audio":
        audio = extra.get("input_audio") or {}
        mime = _AUDIO_MIME.get(str(audio.get("format")))
        if mime is None or not isinstance(audio.get("data"), str):
            raise InvalidRequest(f"{where}.input_audio: needs base64 'data' and format wav or mp3", param=where)
        return {"inlineData": {"mimeType": mime, "data": audio["data"]}}
    if part.type == "file":
        file = extra.get("file") or {}
        if not isinstance(file.get("file_data"), str):
            raise InvalidRequest(f"{where}.file: Gemini models need inline 'file_data' (file ids are OpenAI's)",
                                 param=where)  # fmt: skip
        return _media_part(file["file_data"], f"{where}.file.file_data")
    raise InvalidRequest(f"{where}: content part type {part.type!r} is not supported for Gemini models", param=where)


def _media_part(url: str, where: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime:
            raise InvalidRequest(f"{where}: data URLs must be base64-encoded with a media type", param=where)
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith(("https://", "http://", "gs://")):
        return {"fileData": {"mimeType": _guess_image_mime(url), "fileUri": url}}
    raise InvalidRequest(f"{where}: must be an http(s), gs:// or data: URL", param=where)


def _guess_image_mime(url: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0]
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _IMAGE_EXT_MIME.get(ext, "image/jpeg")  # Gemini needs a type; JPEG is the web's default


def _model_parts(msg: Message, i: int, call_names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = msg.content
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    elif content:
        for item in content:
            # Earlier assistant turns may carry refusal parts: they are plain text to Gemini.
            text = item.text if isinstance(item, TextPart) else getattr(item, "refusal", None)
            if isinstance(text, str) and text:
                parts.append({"text": text})
    for k, call in enumerate(msg.tool_calls or ()):
        name = call.function.name
        call_names[call.id] = name
        where = f"messages[{i}].tool_calls[{k}].function.arguments"
        args = tool_arguments(call.function.arguments, where, "Gemini")
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        signature = signature_from_id(call.id)
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(msg: Message, i: int, call_names: dict[str, str]) -> dict[str, Any]:
    call_id = msg.tool_call_id or ""
    name = call_names.get(call_id)
    if name is None:
        raise InvalidRequest(
            f"messages[{i}].tool_call_id: {call_id!r} matches no tool call of an earlier assistant message "
            "(Gemini needs the function's name)",
            param=f"messages[{i}].tool_call_id",
        )
    text = text_only(msg, i, "Gemini")
    return {"functionResponse": {"name": name, "response": _response_object(text)}}


def _response_object(text: str) -> dict[str, Any]:
    # Gemini wants an object: a JSON object result goes as is, anything else under "output"
    # (Google's documented key for a function's result).
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    return {"output": text}


def _function_declaration(fn: FunctionDef, k: int) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": fn.name}
    if fn.description:
        decl["description"] = fn.description
    params = fn.parameters
    if not params or _no_arguments(params):
        # Gemini rejects an OBJECT without properties: a call without arguments has no parameters.
        return decl
    if params.get("type", "object") != "object":
        where = f"tools[{k}].function.parameters"
        raise InvalidRequest(f"{where}: Gemini function parameters must be a JSON object schema", param=where)
    converted = gemini_schema(params)
    if converted is not None:
        decl["parameters"] = converted
    else:
        decl["parametersJsonSchema"] = params  # beyond the OpenAPI subset: JSON Schema as is
    return decl


def _no_arguments(params: dict[str, Any]) -> bool:
    return (
        params.get("type", "object") == "object"
        and not params.get("properties")
        and not params.get("additionalProperties")
        and not any(key in params for key in _SCHEMA_COMBINATORS)
    )


def _tool_config(req: ChatRequest) -> dict[str, Any] | None:
    choice = req.tool_choice
    if choice is None:
        return None
    config: dict[str, Any]
    if choice == "none":
        config = {"mode": "NONE"}
    elif choice == "auto":
        config = {"mode": "AUTO"}
    elif choice == "required":
        config = {"mode": "ANY"}
    else:
        config = {"mode": "ANY", "allowedFunctionNames": [choice.function.name]}
    return {"functionCallingConfig": config}


class _Inexpressible(Exception):
    """The JSON schema uses something Gemini's OpenAPI subset cannot say."""


def gemini_schema(schema: dict[str, Any], *, ordered: bool = False) -> dict[str, Any] | None:
    """JSON Schema -> Gemini's OpenAPI-subset `Schema`, or None when the subset can't express it.

    `$ref`s are inlined, `["x", "null"]` / `anyOf [x, null]` become `nullable`, `const` a one-value
    enum; keywords Gemini rejects (additionalProperties, $schema, ...) are dropped. Free-form
    objects, arrays without items and recursive schemas have no OpenAPI-subset form: None.
    `ordered` adds propertyOrdering, so structured answers keep the schema's key order.
    """
    defs = schema.get("$defs") or schema.get("definitions") or {}
    try:
        return _SchemaConverter(defs if isinstance(defs, dict) else {}, ordered).convert(schema, 0)
    except _Inexpressible:
        return None


class _SchemaConverter:
    __slots__ = ("defs", "ordered")

    def __init__(self, defs: dict[str, Any], ordered: bool) -> None:
        self.defs = defs
        self.ordered = ordered

    def convert(self, schema: Any, depth: int) -> dict[str, Any]:
        if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
            raise _Inexpressible  # also where a recursive $ref ends: only JSON Schema can say those
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._inline(ref, schema, depth)
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list):
            return self._any_of(schema, branches, depth)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            return self.convert({**all_of[0], **{k: v for k, v in schema.items() if k != "allOf"}}, depth + 1)
        kind, nullable = _schema_type(schema)
        out: dict[str, Any] = {"type": kind}
        if nullable:
            out["nullable"] = True
        for key in _SCHEMA_COPY:
            if key in schema:
                out[key] = schema[key]
        fmt = schema.get("format")
        if fmt in _FORMATS.get(kind, ()):
            out["format"] = fmt
        _copy_enum(schema, kind, out)
        if kind == "OBJECT":
            self._object(schema, depth, out)
        elif kind == "ARRAY":
            out["items"] = self.convert(schema.get("items"), depth + 1)
        return out

    def _inline(self, ref: str, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        target = self.defs.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, dict):
            raise _Inexpressible  # a dangling or external $ref
        return self.convert({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, depth + 1)

    def _object(self, schema: dict[str, Any], depth: int, out: dict[str, Any]) -> None:
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            raise _Inexpressible  # Gemini rejects OBJECT without properties
        out["properties"] = {name: self.convert(sub, depth + 1) for name, sub in props.items()}
        required = [r for r in schema.get("required") or () if r in props]
        if required:
            out["required"] = required
        if self.ordered and len(props) > 1:
            out["propertyOrdering"] = list(props)

    def _any_of(self, schema: dict[str, Any], branches: list[Any], depth: int) -> dict[str, Any]:
        real = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        if len(real) == 1 and isinstance(real[0], dict):
            out = self.convert({**real[0], **rest}, depth + 1)
        else:
            out = {"anyOf": [self.convert(b, depth + 1) for b in real]}
            for key in ("title", "description"):
                if key in schema:
                    out[key] = schema[key]
        if len(real) < len(branches):
            out["nullable"] = True
        return out


def _schema_type(schema: dict[str, Any]) -> tuple[str, bool]:
    kind = schema.get("type")
    nullable = bool(schema.get("nullable"))
    if isinstance(kind, list):
        nullable = nullable or "null" in kind
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise _Inexpressible  # a union of types needs anyOf of schemas
        kind = rest[0]
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "enum" in schema or "const" in schema:
            kind = "string"
        else:
            raise _Inexpressible  # "any value"
    if not isinstance(kind, str) or kind.upper() not in _GEMINI_TYPES:
        raise _Inexpressible
    return kind.upper(), nullable


def _copy_enum(schema: dict[str, Any], kind: str, out: dict[str, Any]) -> None:
    values = schema.get("enum")
    if values is None and "const" in schema:
        values = [schema["const"]]
    # Gemini enums are strings only; other enums are dropped (the type still holds).
    if isinstance(values, list) and values and kind == "STRING" and all(isinstance(v, str) for v in values):
        out["enum"] = values
        out["format"] = "enum"


# ---------------------------------------------------------------------------------------------
# Tool call ids


def tool_call_id(response_id: str, candidate: int, k: int, name: str, args_json: str,
                 signature: str | None = None) -> str:  # fmt: skip
    """A stable id for Gemini's id-less call: the same answer always gets the same ids."""
    seed = f"{response_id}\x00{candidate}\x00{k}\x00{name}\x00{args_json}".encode()
    call_id = "call_" + hashlib.blake2b(seed, digest_size=_ID_HEX // 2).hexdigest()
    if signature:
        # base64url without padding keeps the id within [A-Za-z0-9_-], like every other tool id.
        call_id += _SIGNATURE_MARK + signature.replace("+", "-").replace("/", "_").rstrip("=")
    return call_id


def signature_from_id(call_id: str) -> str | None:
    """The thoughtSignature carried by one of our ids, back in standard base64; None when absent."""
    if len(call_id) <= _ID_SIGNED_PREFIX_LEN or not call_id.startswith("call_"):
        return None
    if call_id[_ID_SIGNED_PREFIX_LEN - len(_SIGNATURE_MARK) : _ID_SIGNED_PREFIX_LEN] != _SIGNATURE_MARK:
        return None
    packed = call_id[_ID_SIGNED_PREFIX_LEN:]
    signature = packed.replace("-", "+").replace("_", "/") + "=" * (-len(packed) % 4)
    try:
        base64.b64decode(signature, validate=True)
    except binascii.Error:
        return None  # a foreign id that merely looks like ours
    return signature


# ---------------------------------------------------------------------------------------------
# Response


def from_gemini_response(resp: dict[str, Any], model_name: str, *, parallel_tool_calls: bool = True) -> ChatCompletion:
    """An OpenAI `chat.completion` for a Gemini GenerateContentResponse (non-streaming)."""
    response_id = resp.get("responseId") or ""
    candidates = resp.get("candidates") or []
    if candidates:
        choices = [_choice(c, response_id, parallel_tool_calls) for c in candidates]
        choices.sort(key=lambda c: c["index"])
    else:
        # No candidate at all: the prompt itself was blocked (promptFeedback.blockReason).
        reason = _CONTENT_FILTER if (resp.get("promptFeedback") or {}).get("blockReason") else "stop"
        choices = [openai_choice(0, "", [], reason)]
    usage = gemini_usage(resp.get("usageMetadata"))
    return openai_completion(completion_id(response_id), model_name, choices, usage, service_tier=None)


def _choice(candidate: dict[str, Any], response_id: str, parallel_tool_calls: bool) -> dict[str, Any]:
    index = candidate.get("index") or 0  # proto3 JSON leaves out index 0
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue  # thought summaries are not part of the answer
        if "text" in part:
            texts.append(part["text"])
        elif "functionCall" in part and (parallel_tool_calls or not calls):
            calls.append(_tool_call(part, response_id, index, len(calls)))
    return openai_choice(
        index, answer_text(texts, calls), calls, finish_reason(candidate.get("finishReason"), bool(calls))
    )


def _tool_call(part: dict[str, Any], response_id: str, candidate: int, k: int) -> dict[str, Any]:
    fn = part["functionCall"]
    name = fn.get("name") or ""
    args = orjson.dumps(fn.get("args") or {}).decode()
    call_id = tool_call_id(response_id, candidate, k, name, args, part.get("thoughtSignature"))
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def completion_id(response_id: str | None) -> str:
    return f"chatcmpl-{response_id}" if response_id else new_completion_id()


def finish_reason(reason: Any, has_tool_calls: bool) -> str:
    """Gemini says STOP after function calls; OpenAI says tool_calls."""
    mapped = _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if mapped == "stop" and has_tool_calls else mapped


def gemini_usage(meta: dict[str, Any] | None) -> Usage:
    """Gemini counts thoughts apart from candidates; OpenAI's completion_tokens includes reasoning."""
    if not meta:
        return Usage()
    thoughts = meta.get("thoughtsTokenCount") or 0
    return Usage(
        prompt_tokens=(meta.get("promptTokenCount") or 0) + (meta.get("toolUsePromptTokenCount") or 0),
        completion_tokens=(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=meta.get("cachedContentTokenCount") or 0,  # already part of promptTokenCount
        reasoning_tokens=thoughts,
    )


def gemini_error(provider: str, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
    """`upstream_error`, with the wait Google puts in `RetryInfo.retryDelay` when no header says it."""
    if status in (429, 503) and "retry-after" not in headers and "Retry-After" not in headers:
        delay = _retry_delay(body)
        if delay is not None:
            headers = {**headers, "retry-after": f"{delay:g}"}
    return upstream_error(provider, status, headers, body)


def _retry_delay(body: bytes) -> float | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")  # a protobuf Duration: "37s", "1.5s"
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0.0, float(delay[:-1]))
                except ValueError:
                    return None
    return None


def stream_error(provider: str, data: dict[str, Any]) -> UpstreamError:
    """An error object inside a 200 stream, as the UpstreamError its HTTP twin would give."""
    err = data.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) and 400 <= code <= 599 else 500
    return gemini_error(provider, status, {}, orjson.dumps(data))


# ---------------------------------------------------------------------------------------------
# Stream


class GeminiStreamTranslator(ChunkStream):
    """Gemini stream events (partial GenerateContentResponses) in, OpenAI chunks out.

    Gemini has no terminal event: the stream is complete when every candidate has a finishReason
    (or the prompt was blocked), which `finished` reports once the upstream closed the stream.
    Tool calls arrive whole, so each goes out in one delta.
    """

    __slots__ = ("_calls", "_done", "_parallel", "_provider", "_response_id", "_started", "_usage")

    def __init__(self, model_name: str, *, parallel_tool_calls: bool = True, provider: str = "gemini") -> None:
        super().__init__(model_name, new_completion_id())
        self._provider = provider
        self._parallel = parallel_tool_calls
        self._response_id: str | None = None
        self._started: set[int] = set()  # candidates whose role chunk went out
        self._done: set[int] = set()  # candidates whose finish chunk went out
        self._calls: dict[int, int] = {}  # candidate -> tool calls sent
        self._usage: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return bool(self._started) and self._done >= self._started

    @property
    def usage(self) -> Usage:
        return gemini_usage(self._usage)

    def feed(self, data: dict[str, Any]) -> list[ChatChunk]:
        if "error" in data and "candidates" not in data:
            raise stream_error(self._provider, data)
        if self._response_id is None:
            self._response_id = data.get("responseId") or ""
            self.completion_id = completion_id(self._response_id)
        meta = data.get("usageMetadata")
        if meta:
            self._usage = meta  # cumulative: the last one has the final counts
        candidates = data.get("candidates")
        if candidates:
            out: list[ChatChunk] = []
            for candidate in candidates:
                self._candidate(candidate, out)
            return out
        if (data.get("promptFeedback") or {}).get("blockReason") and not self._started:
            out = []
            self._start(0, out)
            self._finish(0, _CONTENT_FILTER, out)
            return out
        return []

    def _indexed_chunk(self, index: int, delta: dict[str, Any], reason: str | None = None) -> ChatChunk:
        out = self._chunk(delta, reason)
        if index:
            out["choices"][0]["index"] = index
        return out

    def _start(self, index: int, out: list[ChatChunk]) -> None:
        self._started.add(index)
        out.append(self._indexed_chunk(index, {"role": "assistant", "content": ""}))

    def _finish(self, index: int, reason: str, out: list[ChatChunk]) -> None:
        self._done.add(index)
        out.append(self._indexed_chunk(index, {}, reason))

    def _candidate(self, candidate: dict[str, Any], out: list[ChatChunk]) -> None:
        index = candidate.get("index") or 0
        if index in self._done:
            return
        if index not in self._started:
            self._start(index, out)
        for part in (candidate.get("content") or {}).get("parts") or ():
            if part.get("thought"):
                continue
            text = part.get("text")
            if text:
                out.append(self._indexed_chunk(index, {"content": text}))
            elif "functionCall" in part:
                self._tool_call(index, part, out)
        reason = candidate.get("finishReason")
        if reason:
            self._finish(index, finish_reason(reason, bool(self._calls.get(index))), out)

    def _tool_call(self, index: int, part: dict[str, Any], out: list[ChatChunk]) -> None:
        k = self._calls.get(index, 0)
        if k and not self._parallel:
            return  # parallel_tool_calls=false: the first call only
        self._calls[index] = k + 1
        call = _tool_call(part, self._response_id or "", index, k)
        out.append(self._indexed_chunk(index, {"tool_calls": [{"index": k, **call}]}))


# ---------------------------------------------------------------------------------------------
# Embeddings


def embedding_texts(req: EmbeddingRequest) -> list[str]:
    raw = req.input
    if isinstance(raw, str):
        return [raw]
    if all(isinstance(item, str) for item in raw):
        return [str(item) for item in raw]
    raise InvalidRequest("input: Gemini embedding models take text, not token arrays", param="input")


def to_batch_embed_request(req: EmbeddingRequest, model_name: str, texts: list[str]) -> dict[str, Any]:
    """The Gemini API `batchEmbedContents` body: one request per input text."""
    base: dict[str, Any] = {"model": f"models/{model_name}"}
    if req.dimensions is not None:
        base["outputDimensionality"] = req.dimensions
    return {"requests": [{**base, "content": {"parts": [{"text": text}]}} for text in texts]}


def from_batch_embed_response(
    data: dict[str, Any], model_name: str, texts: list[str], encoding: str | None
) -> dict[str, Any]:
    vectors = [e.get("values") or [] for e in data.get("embeddings") or ()]
    tokens = (data.get("usageMetadata") or {}).get("promptTokenCount")
    # batchEmbedContents reports no token count: estimate, so cost is still settled.
    return openai_embeddings(vectors, model_name, tokens or sum(estimate_text_tokens(t) for t in texts), encoding)


def to_vertex_predict_request(req: EmbeddingRequest, texts: list[str]) -> dict[str, Any]:
    """The Vertex AI `:predict` body for text embedding models."""
    body: dict[str, Any] = {"instances": [{"content": text} for text in texts]}
    if req.dimensions is not None:
        body["parameters"] = {"outputDimensionality": req.dimensions}
    return body


def from_vertex_predict_response(data: dict[str, Any], model_name: str, encoding: str | None) -> dict[str, Any]:
    vectors: list[list[float]] = []
    tokens = 0
    for prediction in data.get("predictions") or ():
        emb = prediction.get("embeddings") or {}
        vectors.append(emb.get("values") or [])
        tokens += int((emb.get("statistics") or {}).get("token_count") or 0)
    return openai_embeddings(vectors, model_name, tokens, encoding)
