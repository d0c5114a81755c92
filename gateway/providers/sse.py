"""Incremental Server-Sent Events decoding for upstream streams (hot path, so hand-sized)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Split a byte stream into events per the SSE spec (blank line ends an event)."""
    buffer = b""
    event = ""
    data: list[str] = []
    async for piece in chunks:
        buffer += piece
        while True:
            nl = buffer.find(b"\n")
            if nl < 0:
                break
            line = buffer[:nl].rstrip(b"\r").decode()
            buffer = buffer[nl + 1 :]
            if not line:
                if data or event:
                    yield SSEEvent(event or "message", "\n".join(data))
                event, data = "", []
            elif line.startswith(":"):
                continue  # comment / keep-alive
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field == "event":
                    event = value
    # Per the SSE spec an event cut off before its blank line is never dispatched: a truncated
    # upstream stream then shows up as a missing terminal event, not as half a JSON object.


def encode_sse(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame; `data` must be a single line (JSON is)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
