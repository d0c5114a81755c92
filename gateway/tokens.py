"""Cheap prompt-size estimate used before sending (context-window checks, cost bounds).

Exact tokenizers need per-provider vocabularies (tiktoken downloads its files at run time);
routing only needs a bound, so ~4 characters per token plus per-message overhead is used.
Usage reported by the upstream is what gets billed.
"""

from __future__ import annotations

from aimm_gateway.canonical import ChatRequest

_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 4
_PER_IMAGE = 765  # a high-detail 512px tile budget, the common case


def estimate_prompt_tokens(req: ChatRequest) -> int:
    total = 3
    for message in req.messages:
        total += _PER_MESSAGE + len(message.text()) // _CHARS_PER_TOKEN
        if message.has_image():
            total += _PER_IMAGE
        if message.tool_calls:
            total += sum(len(c.function.arguments) // _CHARS_PER_TOKEN + 8 for c in message.tool_calls)
    if req.tools:
        total += sum(len(str(t.function.parameters or {})) // _CHARS_PER_TOKEN + 10 for t in req.tools)
    return total


def estimate_text_tokens(text: str) -> int:
    return max(1, len(text) // _CHARS_PER_TOKEN)
