"""Incremental AWS event-stream decoding (`application/vnd.amazon.eventstream`) for upstream streams.

Each frame is: prelude (total length, headers length, prelude CRC32), headers, payload, message
CRC32. botocore's `EventStreamBuffer` is the maintained parser: it reassembles frames split across
reads and validates both checksums, so a corrupted frame is an error here, never a wrong answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from aimm_gateway.errors import UpstreamError

CONTENT_TYPE = "application/vnd.amazon.eventstream"


@dataclass(slots=True)
class StreamMessage:
    """One decoded frame: `kind` is the `:message-type` ("event", "exception" or "error")."""

    kind: str
    name: str  # `:event-type`, `:exception-type` or `:error-code`
    payload: bytes
    error_message: str = ""  # `:error-message` of "error" frames (their payload is empty)


async def iter_eventstream(chunks: AsyncIterator[bytes], provider: str) -> AsyncIterator[StreamMessage]:
    """Frames as they complete; a partial frame left at the end is dropped (the caller sees no end event)."""
    buffer = EventStreamBuffer()
    async for piece in chunks:
        buffer.add_data(piece)
        for message in _complete_frames(buffer, provider):
            yield message


def _complete_frames(buffer: EventStreamBuffer, provider: str) -> list[StreamMessage]:
    try:
        return [_message(raw) for raw in buffer]
    except ParserError as exc:
        # CRC mismatch or absurd lengths: the bytes can't be trusted, and neither can the rest.
        raise UpstreamError(
            f"{provider} sent a corrupt event-stream frame ({type(exc).__name__})", kind="connection"
        ) from None


def _message(raw: EventStreamMessage) -> StreamMessage:
    headers = raw.headers
    kind = str(headers.get(":message-type", "event"))
    if kind == "exception":
        return StreamMessage(kind, str(headers.get(":exception-type", "")), raw.payload)
    if kind == "error":
        code = str(headers.get(":error-code", ""))
        return StreamMessage(kind, code, raw.payload, str(headers.get(":error-message", "")))
    return StreamMessage(kind, str(headers.get(":event-type", "")), raw.payload)
