"""Pieces every outbound translator needs the same way (one place, so they can't drift)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from aimm_gateway.canonical import ChatRequest, Message, TextPart
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
