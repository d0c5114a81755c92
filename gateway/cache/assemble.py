"""A streamed answer's chunks put back together as one chat completion (pure), for the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aimm_gateway.canonical import ChatChunk, ChatCompletion


def _merge_tool_calls(into: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for delta in deltas:
        index = int(delta.get("index", len(into)))
        while len(into) <= index:
            into.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        call = into[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        fn = delta.get("function") or {}
        call["function"]["name"] += fn.get("name") or ""
        call["function"]["arguments"] += fn.get("arguments") or ""


def assemble(chunks: Sequence[ChatChunk]) -> ChatCompletion | None:
    """None when the stream carried no choice (nothing worth caching)."""
    choices: dict[int, dict[str, Any]] = {}
    head: dict[str, Any] = {}
    usage = None
    for chunk in chunks:
        head = head or {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        usage = chunk.get("usage") or usage
        for c in chunk.get("choices") or ():
            out = choices.setdefault(int(c.get("index", 0)), {"role": "assistant", "content": "", "tool_calls": []})
            delta = c.get("delta") or {}
            out["content"] += delta.get("content") or ""
            _merge_tool_calls(out["tool_calls"], delta.get("tool_calls") or [])
            if c.get("finish_reason"):
                out["finish_reason"] = c["finish_reason"]
    if not choices:
        return None
    answer: ChatCompletion = {**head, "object": "chat.completion", "choices": []}
    for index in sorted(choices):
        c = choices[index]
        message: dict[str, Any] = {"role": "assistant", "content": c["content"] or None}
        if c["tool_calls"]:
            message["tool_calls"] = c["tool_calls"]
        answer["choices"].append({"index": index, "message": message, "finish_reason": c.get("finish_reason")})
    if usage is not None:
        answer["usage"] = usage
    return answer
