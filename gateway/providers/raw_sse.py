"""An OpenAI-style SSE upstream read as raw event payloads: one batch per upstream read.

The pass-through relay (`attempts/relay.py`) sends the upstream's own bytes on to the client;
decoding and re-encoding every chunk was most of a relayed chunk's Python CPU. Here an event is
split out of the byte stream and handed on as its `data` bytes; only events that may be an
error (a byte search for `"error"`) or that are not a JSON object are decoded. `[DONE]` ends it.
A batch holds every event one upstream read completed, so the relay can send them in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.exchange import decode_json
from aimm_gateway.providers.http import UpstreamBody

_DONE = b"[DONE]"
_DONE_LINE = b"data: [DONE]"
SEP = b"\n\ndata: "  # between two events' payloads in a batch, as an upstream writes them


class Batch:
    """The payloads of the events one upstream read completed, joined by `SEP` as the upstream
    sent them: the relay checks and sends the joined bytes whole, so the usual read is never
    split into an object per event only to be joined again (`payloads()` splits on demand)."""

    __slots__ = ("_parts", "count", "joined")

    def __init__(self, joined: bytes, count: int, parts: list[bytes] | None = None) -> None:
        self.joined = joined
        self.count = count
        self._parts = parts  # kept when known (an event read line by line may hold `SEP` itself)

    def payloads(self) -> list[bytes]:
        return self._parts if self._parts is not None else self.joined.split(SEP)

    @property
    def split_exactly(self) -> bool:
        """Every `SEP` in `joined` is between two events (so `spans_naming` may be used on it)."""
        return self._parts is None


def spans_naming(joined: bytes, needle: bytes, unless: bytes = b"", limit: int | None = None) -> list[tuple[int, int]]:
    """Where in `joined` (payloads joined by `SEP`, none holding it) the events are that hold
    `needle` at a place where `unless` does not start: each as (start, end), once, in order.
    Searched from the end, where a stream's usage chunk is, and over once `limit` such places
    (if given) are accounted for: the usage chunk is found without cutting a read into events."""
    spans: list[tuple[int, int]] = []
    before, left = len(joined), limit
    while (left is None or left > 0) and (i := joined.rfind(needle, 0, before)) >= 0:
        if unless and joined.startswith(unless, i):
            before = i
            continue
        start, end = joined.rfind(SEP, 0, i), joined.find(SEP, i)
        start, end = (0 if start < 0 else start + len(SEP)), (len(joined) if end < 0 else end)
        spans.append((start, end))
        if left is not None:
            left -= joined.count(needle, start, end) - (joined.count(unless, start, end) if unless else 0)
        before = start
    spans.reverse()
    return spans


class RawEvents:
    """`open`, then `read` until it returns None (after `[DONE]`); `aclose` in every case."""

    __slots__ = ("_body", "_buffer", "_error", "_open", "_provider", "done")

    def __init__(self, open_body: Callable[[], Awaitable[UpstreamBody]], provider: str) -> None:
        self._open: Callable[[], Awaitable[UpstreamBody]] | None = open_body
        self._provider = provider
        self._body: UpstreamBody | None = None
        self._buffer = b""
        self._error: UpstreamError | None = None  # found after good events of the same read: raised next
        self.done = False  # `[DONE]` seen: nothing more to read

    async def open(self) -> None:
        """Send the request; a failed status raises (mapped by the provider) before any event."""
        assert self._open is not None, "opened twice"
        open_body, self._open = self._open, None  # the request (its body bytes) is not kept once sent
        self._body = await open_body()

    def waiter(self) -> asyncio.Future[Any] | None:
        """None, or the upstream body's Future to await before `read` returns without waiting
        (unless that read completes no event: then `read` waits again itself)."""
        if self._error is not None or self.done or self._body is None:
            return None
        return self._body.waiter()

    async def read(self) -> Batch | None:
        """The payloads of the events the next upstream read(s) complete (at least one);
        None once `[DONE]` was read. Raises UpstreamError for an error event or a cut-off stream."""
        assert self._body is not None
        while True:
            if self._error is not None:
                raise self._error
            if self.done:
                return None
            piece = await self._body.read()
            if piece is None:
                raise UpstreamError(f"{self._provider} stream ended before [DONE]", kind="connection")
            events = self._split(piece)
            if events is not None:
                return events  # an error or `[DONE]` after them comes with the next read

    async def aclose(self) -> None:
        """Return or close the upstream connection (nothing to do if `open` never succeeded)."""
        self._open = None
        if self._body is not None:
            body, self._body = self._body, None
            await body.aclose()

    def _split(self, piece: bytes) -> Batch | None:
        """The events `piece` completes (None: none), the rest kept for the next piece."""
        buffer = self._buffer + piece if self._buffer else piece
        if b"\r" in buffer:  # CRLF (or CR) line ends: rare, normalised; a trailing CR waits for its LF
            keep = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n")
            buffer = buffer[:-1].replace(b"\r", b"\n") + b"\r" if keep else buffer.replace(b"\r", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer
            return None
        complete, self._buffer = buffer[:end], buffer[end + 2 :]
        done = complete.endswith(_DONE_LINE) and (len(complete) == len(_DONE_LINE) or complete[-14:-12] == b"\n\n")
        if done:  # `[DONE]` last: the events before it, then the end
            complete = complete[: -len(_DONE_LINE) - 2] if len(complete) > len(_DONE_LINE) else b""
            self._buffer = b""
        # The common case, in C: every event one `data: {...}` line, none that may be an error
        # (so every `SEP` in it is between two events).
        if complete.startswith(b"data: {") and b'"error"' not in complete:
            joins = complete.count(b"\n\ndata: {")
            if joins * 2 == complete.count(b"\n"):
                self.done = self.done or done
                return Batch(complete[6:], joins + 1)
        parts = self._events(complete) if complete else []
        events = Batch(SEP.join(parts), len(parts), parts) if parts else None
        self.done = self.done or (done and self._error is None)
        return events

    def _events(self, complete: bytes) -> list[bytes]:
        """Event by event: comments, multi-line data, errors, `[DONE]` (what follows it is ignored)."""
        out: list[bytes] = []
        for block in complete.split(b"\n\n"):
            data = _data(block)
            if data is not None:
                self._take(data, out)
            if self.done or self._error is not None:
                self._buffer = b""
                break
        return out

    def _take(self, data: bytes, out: list[bytes]) -> None:
        if data == _DONE:
            self.done = True
        elif data[:1] != b"{" or b'"error"' in data:
            try:
                decoded = decode_json(self._provider, data)  # invalid JSON: the upstream's fault
            except UpstreamError as exc:
                self._error = exc
                return
            if "error" in decoded and "choices" not in decoded:
                err = decoded["error"] if isinstance(decoded["error"], dict) else {"message": str(decoded["error"])}
                self._error = UpstreamError(f"{self._provider} stream error: {err.get('message')}", kind="http")
            else:
                out.append(data)
        else:
            out.append(data)


def _data(block: bytes) -> bytes | None:
    """The `data` of one event block (its lines joined by LF); None for a comment-only block."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]  # the common case: one `data:` line
    lines = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines) if lines else None
