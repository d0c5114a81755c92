"""In-process cost of the translation layer per request (what the wire formats add).

Pass-through (OpenAI → OpenAI-compatible) is the request rewrite + encode and the response
decode; translated (OpenAI → Anthropic) adds building the Anthropic body and mapping the
answer back. Measured with timeit, best of several repeats, in µs.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import orjson

from aimm_gateway.canonical import validate_chat
from aimm_gateway.config import ModelConfig
from aimm_gateway.providers.anthropic_translate import from_anthropic_response, to_anthropic_request

BODY: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name three primary colours."},
        {"role": "assistant", "content": "Red, yellow, blue."},
        {"role": "user", "content": "And secondary ones?"},
    ],
    "max_tokens": 64,
}
OPENAI_ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Green, orange, purple."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36},
    }
)
ANTHROPIC_ANSWER = orjson.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [{"type": "text", "text": "Green, orange, purple."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 6},
    }
)


def _best_us(fn: Callable[[], object], number: int = 5000, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def bench_translation() -> dict[str, float]:
    req = validate_chat(BODY)
    model = ModelConfig(name="claude", provider="anthropic", max_output_tokens=1024)

    def passthrough() -> object:
        orjson.dumps({**BODY, "model": "upstream"})
        return orjson.loads(OPENAI_ANSWER)

    def translated() -> object:
        orjson.dumps(to_anthropic_request(req, model, stream=False))
        return from_anthropic_response(orjson.loads(ANTHROPIC_ANSWER), "claude")

    return {
        "OpenAI → OpenAI-compatible (rewrite + encode + decode)": _best_us(passthrough),
        "OpenAI → Anthropic (translate + encode + decode + translate back)": _best_us(translated),
    }
