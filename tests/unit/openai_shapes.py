"""What the provider adapter tests share: OpenAI-shaped inputs, and oracles that hold an
adapter's output to the official OpenAI SDK's types."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from aimm_gateway.canonical import ChatRequest, validate_chat
from aimm_gateway.errors import InvalidRequest

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# The same tool with a required enum argument (the mock fills both in from the schema).
WEATHER_UNIT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def rejected(translate: Callable[[ChatRequest], object], body: dict[str, Any]) -> InvalidRequest:
    """The 400 an adapter's request translation raises for `body` (validated as OpenAI's first)."""
    with pytest.raises(InvalidRequest) as info:
        translate(validate_chat(body))
    assert info.value.status == 400
    return info.value


def _no_extras(model: BaseModel, path: str) -> None:
    assert not model.model_extra, f"{path}: fields unknown to the OpenAI SDK: {sorted(model.model_extra or {})}"
    for name in type(model).model_fields:
        value = getattr(model, name)
        for k, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, BaseModel):
                _no_extras(item, f"{path}.{name}[{k}]")


def assert_openai_completion(completion: dict[str, Any]) -> ChatCompletion:
    parsed = ChatCompletion.model_validate(completion)
    _no_extras(parsed, "completion")
    return parsed


def assert_openai_chunks(chunks: list[dict[str, Any]]) -> list[ChatCompletionChunk]:
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    for k, c in enumerate(parsed):
        _no_extras(c, f"chunk[{k}]")
    return parsed


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What an OpenAI client accumulates from a stream: message, finish reason, usage."""
    content: str | None = None
    calls: dict[int, dict[str, Any]] = {}
    finish = usage = None
    for c in chunks:
        usage = c.get("usage") or usage
        for choice in c["choices"]:
            delta = choice["delta"]
            if delta.get("content") is not None:
                content = (content or "") + delta["content"]
            for tc in delta.get("tool_calls") or ():
                call = calls.setdefault(tc["index"], {"id": None, "type": "function", "function": {"arguments": ""}})
                call["id"] = tc.get("id") or call["id"]
                fn = tc.get("function") or {}
                if "name" in fn:
                    call["function"]["name"] = fn["name"]
                call["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice["finish_reason"] or finish
    message: dict[str, Any] = {"content": content or None}
    if calls:
        message["tool_calls"] = [calls[k] for k in sorted(calls)]
    return {"message": message, "finish_reason": finish, "usage": usage}
