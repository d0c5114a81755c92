"""Pieces every outbound translator needs the same way (one place, so they can't drift)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aimm_gateway.canonical import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    Message,
    TextPart,
    Usage,
    chunk,
    now_s,
    usage_chunk,
)
from aimm_gateway.errors import InvalidRequest


def require_one_choice_and_unit_temperature(req: ChatRequest, target: str) -> None:
    """For formats with one choice per request and temperature 0..1 (OpenAI allows n > 1 and 0..2)."""
    if req.n is not None and req.n > 1:
        raise InvalidRequest(f"n: {target} return one choice per request; n > 1 is not supported", param="n")
    if req.temperature is not None and req.temperature > 1:
        raise InvalidRequest(
            f"temperature: {target} accept 0 to 1, got {req.temperature:g} "
            "(OpenAI's 0 to 2 range cannot be mapped faithfully)",
            param="temperature",
        )


def reject_logprobs_and_audio(req: ChatRequest, target: str) -> None:
    """OpenAI's log probabilities and audio output, which no other format can give."""
    extra = req.model_extra
    if not extra:
        return
    if extra.get("logprobs") or extra.get("top_logprobs") is not None:
        raise InvalidRequest(f"logprobs: {target} do not return log probabilities", param="logprobs")
    if extra.get("audio") is not None or "audio" in (extra.get("modalities") or ()):
        raise InvalidRequest(f"modalities: {target} do not produce audio", param="modalities")


def reject_json_object(req: ChatRequest, target: str) -> None:
    """For formats that constrain output only by a schema (OpenAI's json_object mode has none)."""
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        raise InvalidRequest(
            f"response_format: json_object is not supported for {target}; use json_schema with a schema",
            param="response_format",
        )


def sampling(req: ChatRequest, names: Mapping[str, str]) -> dict[str, Any]:
    """The request's sampling settings that are set, under the format's own names ({field: wire name}).

    `stop` goes out as a list, and only when there is one.
    """
    out: dict[str, Any] = {}
    for field, wire in names.items():
        value = (req.stop_list if req.stop else None) if field == "stop" else getattr(req, field)
        if value is not None:
            out[wire] = value
    return out


def has_text(text: str) -> bool:
    """Anthropic and Bedrock reject empty and whitespace-only text blocks."""
    return bool(text) and not text.isspace()


def text_only(msg: Message, i: int, target: str) -> str:
    """The text of a message that `target` accepts only as text (system, tool results…)."""
    content = msg.content
    if isinstance(content, str) or content is None:
        return content or ""
    for j, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise InvalidRequest(
                f"messages[{i}].content[{j}]: {msg.role} messages to {target} models may only contain text",
                param=f"messages[{i}].content[{j}]",
            )
    return "".join(p.text for p in content if isinstance(p, TextPart))


def tool_arguments(arguments: str, where: str, target: str) -> dict[str, Any]:
    """A tool call's JSON arguments as an object, for formats that carry them parsed."""
    if not arguments.strip():
        return {}  # some clients send "" for a call without arguments
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{where}: not valid JSON", param=where) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: must be a JSON object for {target} models", param=where)
    return value


def answer_text(texts: list[str], calls: list[dict[str, Any]]) -> str | None:
    """OpenAI's message content: the text, or null when the answer is only tool calls."""
    return "".join(texts) if texts else (None if calls else "")


def openai_choice(index: int, content: str | None, calls: list[dict[str, Any]], reason: str) -> dict[str, Any]:
    """One choice of an OpenAI `chat.completion`: the assistant message and its tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": reason}


def openai_completion(
    completion_id: str, model_name: str, choices: list[dict[str, Any]], usage: Usage, service_tier: str | None
) -> ChatCompletion:
    """An OpenAI `chat.completion`, whatever format produced the choices."""
    out: ChatCompletion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": now_s(),
        "model": model_name,
        "system_fingerprint": None,
    }
    if service_tier is not None:
        out["service_tier"] = service_tier
    out["choices"] = choices
    out["usage"] = usage.to_openai()
    return out


def object_schema(schema: dict[str, Any] | None, where: str, target: str) -> dict[str, Any]:
    """A tool's parameters as the object schema Anthropic and Converse require (empty: no arguments)."""
    if not schema:
        return {"type": "object", "properties": {}}
    kind = schema.get("type")
    if kind == "object":
        return schema
    if kind is None:
        return {**schema, "type": "object"}
    raise InvalidRequest(f"{where}: {target} tool inputs must be JSON objects (type 'object')", param=where)


def openai_embeddings(vectors: list[list[float]], model_name: str, tokens: int, encoding: str | None) -> dict[str, Any]:
    """An OpenAI `list` of embeddings, whatever format produced the vectors."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode_embedding(v, encoding)}
            for i, v in enumerate(vectors)
        ],
        "model": model_name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def encode_embedding(vector: list[float], encoding: str | None) -> list[float] | str:
    """OpenAI's embedding forms: a float list, or base64 of little-endian float32 (the SDK default)."""
    if encoding != "base64":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


# ---------------------------------------------------------------------------------------------
# Alternating turns (Anthropic Messages, Bedrock Converse): same rules, different block spellings


@dataclass(frozen=True, slots=True)
class TurnFormat:
    """How an alternating-turn format spells its blocks; text blocks are the ones with a "text" key."""

    target: str  # "Anthropic", "Bedrock": named in error messages
    text_block: Callable[[str], dict[str, Any]]
    user_part: Callable[[Any, int, int], dict[str, Any]]  # (part, message index, part index)
    tool_result: Callable[[Message, int], dict[str, Any]]
    tool_calls: Callable[[Message, int], list[dict[str, Any]]]


def alternating_turns(messages: list[Message], fmt: TurnFormat) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hoist system/developer text to `system`; merge consecutive same-role turns (the format alternates)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        role = msg.role
        if role == "system" or role == "developer":
            text = text_only(msg, i, fmt.target)
            if has_text(text):
                system.append(fmt.text_block(text))
            continue
        if role == "tool":
            role, blocks = "user", [fmt.tool_result(msg, i)]
        elif role == "user":
            blocks = _user_blocks(msg, i, fmt)
        else:
            blocks = _assistant_blocks(msg, i, fmt)
            if not blocks:
                continue  # an empty assistant turn says nothing; the format rejects empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest(f"messages: {fmt.target} models need at least one user message", param="messages")
    _trim_prefill(turns, fmt)
    return system, turns


def _trim_prefill(turns: list[dict[str, Any]], fmt: TurnFormat) -> None:
    # A final assistant turn is a prefill; both formats reject one that ends in whitespace.
    last = turns[-1]
    if last["role"] != "assistant" or "text" not in last["content"][-1]:
        return
    text = last["content"][-1]["text"].rstrip()
    if text:
        last["content"][-1] = fmt.text_block(text)
        return
    last["content"].pop()
    if not last["content"]:
        turns.pop()


def _user_blocks(msg: Message, i: int, fmt: TurnFormat) -> list[dict[str, Any]]:
    content = msg.content
    blocks: list[dict[str, Any]]
    if isinstance(content, str):
        blocks = [fmt.text_block(content)] if has_text(content) else []
    else:
        blocks = [fmt.user_part(part, i, j) for j, part in enumerate(content or ())]
        blocks = [b for b in blocks if "text" not in b or has_text(b["text"])]
    if not blocks:
        raise InvalidRequest(
            f"messages[{i}].content: empty; {fmt.target} models need non-empty user content",
            param=f"messages[{i}].content",
        )
    return blocks


def _assistant_blocks(msg: Message, i: int, fmt: TurnFormat) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = msg.content
    if isinstance(content, str):
        if has_text(content):
            blocks.append(fmt.text_block(content))
    elif content:
        for part in content:
            # OpenAI lets earlier assistant turns carry refusal parts: they are text here.
            text = part.text if isinstance(part, TextPart) else getattr(part, "refusal", None)
            if isinstance(text, str) and has_text(text):
                blocks.append(fmt.text_block(text))
    blocks.extend(fmt.tool_calls(msg, i))
    return blocks


# ---------------------------------------------------------------------------------------------
# Stream translators


class ChunkStream:
    """What every stream translator shares: the answer's id, model and time, and its chunks' shape.

    Subclasses say how they count tokens (`usage`); the usage chunk that ends every stream is built here.
    """

    __slots__ = ("completion_id", "created", "model")

    def __init__(self, model_name: str, completion_id: str) -> None:
        self.model = model_name
        self.completion_id = completion_id
        self.created = now_s()

    @property
    def usage(self) -> Usage:
        raise NotImplementedError

    def final_usage_chunk(self) -> ChatChunk:
        return usage_chunk(self.completion_id, self.model, self.created, self.usage)

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> ChatChunk:
        return chunk(self.completion_id, self.model, self.created, delta, reason)

    def _text(self, text: Any) -> list[ChatChunk]:
        """A content chunk, or none for an empty (or missing) piece of text."""
        return [self._chunk({"content": text})] if isinstance(text, str) and text else []


class ToolCallStream(ChunkStream):
    """A stream whose tool calls open in one event and get their arguments in later ones.

    The format numbers content blocks (or calls) its own way; OpenAI numbers tool calls among
    tool calls, so block indexes are mapped. The finish chunk goes out once, however often the
    format repeats its stop reason.
    """

    __slots__ = ("_finished", "_tool_index")

    def __init__(self, model_name: str, completion_id: str) -> None:
        super().__init__(model_name, completion_id)
        self._tool_index: dict[int, int] = {}  # the format's block index -> OpenAI tool-call index
        self._finished = False

    def _open_call(self, block: int, call_id: Any, name: Any, arguments: str = "") -> list[ChatChunk]:
        index = self._tool_index[block] = len(self._tool_index)
        call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        return [self._chunk({"tool_calls": [call]})]

    def _call_arguments(self, block: int, fragment: str) -> list[ChatChunk]:
        index = self._tool_index.get(block)
        if index is None:
            return []  # a block that never opened as a tool call
        return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})]

    def _finish(self, reason: str) -> list[ChatChunk]:
        if self._finished:
            return []
        self._finished = True
        return [self._chunk({}, reason)]
