"""Bounded CPU per request (probe finding 2): big bodies parsed off the event loop, and chat
requests with too many messages or too much text refused before any validation runs."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from aimm_gateway.config import HardeningSettings
from aimm_gateway.errors import PayloadTooLarge


async def parse_json(body: bytes | bytearray, hardening: HardeningSettings) -> Any:
    """orjson on the loop for small bodies (faster than a thread hop); a worker thread for big ones."""
    if len(body) > hardening.json_thread_bytes:
        return await asyncio.to_thread(orjson.loads, bytes(body))
    return orjson.loads(body)


def check_chat_size(data: Any, hardening: HardeningSettings) -> None:
    """Refuse message lists longer than `max_messages` or with more than `max_content_chars` of text."""
    if not isinstance(data, dict):
        return
    messages = data.get("messages")
    if not isinstance(messages, list):
        return
    if len(messages) > hardening.max_messages:
        raise PayloadTooLarge(
            f"messages: {len(messages)} messages; the limit is {hardening.max_messages}", param="messages"
        )
    total = 0
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    if total > hardening.max_content_chars:
        raise PayloadTooLarge(
            f"messages: {total} characters of content; the limit is {hardening.max_content_chars}", param="messages"
        )
