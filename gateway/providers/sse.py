"""Incremental Server-Sent Events decoding for upstream streams (hot path, so hand-sized)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


class SSEParser:
    """Splits a byte stream into events per the SSE spec (a blank line ends an event).

    Fed piece by piece and returning whole events, so a reader adds no generator of its own
    between the socket and whoever consumes the events (this runs for every streamed chunk).
    Per the SSE spec an event cut off before its blank line is never dispatched: a truncated
    upstream stream then shows up as a missing terminal event, not as half a JSON object.
    """

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, piece: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        buffer = self._buffer + piece
        while True:
            nl = buffer.find(b"\n")
            if nl < 0:
                break
            line = buffer[:nl].rstrip(b"\r").decode()
            buffer = buffer[nl + 1 :]
            if not line:
                if self._data or self._event:
                    out.append(SSEEvent(self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
            elif line.startswith(":"):
                continue  # comment / keep-alive
            else:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    self._data.append(value)
                elif field == "event":
                    self._event = value
        self._buffer = buffer
        return out


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """The events of a byte stream, as they complete."""
    parser = SSEParser()
    async for piece in chunks:
        for event in parser.feed(piece):
            yield event


def encode_sse(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame; `data` must be a single line (JSON is)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
