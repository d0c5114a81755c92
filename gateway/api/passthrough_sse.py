"""OpenAI SSE framing of a pass-through relay: the upstream's chunk bytes, one write per upstream read.

The decoded path (`openai_routes.openai_sse`) parses, shapes and re-encodes every chunk and
sends each in its own write. Here a batch of events (all one upstream read completed) becomes
one frame string; a chunk is touched only to shape `usage` for the client (upstreams are always
asked for it, to settle cost; clients see it only if they asked): the `"usage":null` OpenAI puts
in every chunk is cut out by a byte replace, and only the final usage chunk is decoded.
Nothing waits for a next event: a batch is sent as soon as the read that completed it returns.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from aimm_gateway.attempts.relay import ByteRelay
from aimm_gateway.errors import GatewayError
from aimm_gateway.providers.raw_sse import SEP, Batch, spans_naming
from aimm_gateway.providers.sse import encode_sse

DONE = b"data: [DONE]\n\n"
_USAGE = b'"usage"'
_NULL_USAGE = b',"usage":null'


class OpenAIFrames:
    """An async iterator of SSE frame batches for SSEResponse; a failure after the first byte
    ends with an error event, never silently (as `openai_sse`)."""

    __slots__ = ("_ended", "_relay", "_want_usage")

    def __init__(self, relay: ByteRelay, want_usage: bool) -> None:
        self._relay = relay
        self._want_usage = want_usage
        self._ended = False

    def __aiter__(self) -> OpenAIFrames:
        return self

    def waiter(self) -> asyncio.Future[Any] | None:
        """None, or the upstream's Future to await before `__anext__` returns without waiting:
        SSEResponse awaits it bare, so a stream waiting for its next chunk holds that one Future,
        not the chain of coroutines (this, the relay's, the events', the body's) each wait made."""
        return None if self._ended else self._relay.waiter()

    async def __anext__(self) -> bytes:
        relay = self._relay
        while not self._ended:
            try:
                batch = await relay.read()
                if batch is not None and relay.complete:  # [DONE] came in this read: settle, end in one write
                    await relay.read()
                    self._ended = True
            except GatewayError as exc:
                self._ended = True
                return encode_sse(exc.body_bytes())
            if batch is None:
                self._ended = True
                return DONE
            frames = self._frames(batch)
            if frames or self._ended:
                return frames + DONE if self._ended else frames
        raise StopAsyncIteration

    def _frames(self, batch: Batch) -> bytes:
        """The batch as SSE frames, shaped on the joined bytes when it can be (one C call, not one
        Python call per event), event by event when a chunk must be decoded (the usage chunk)."""
        joined = batch.joined
        if self._want_usage:
            if joined.count(_USAGE) == batch.count:  # every chunk names usage: as the client expects
                return b"data: " + joined + b"\n\n"
        elif _USAGE not in joined:
            return b"data: " + joined + b"\n\n"
        else:
            joined = joined.replace(_NULL_USAGE, b"")
            if _USAGE not in joined:
                return b"data: " + joined + b"\n\n"
            if batch.split_exactly:  # the usage chunk: shaped alone, the events around it kept joined
                joined = self._shape_named(joined)
                return b"data: " + joined + b"\n\n" if joined else b""
        shaped = [s for s in map(self._shape, batch.payloads()) if s is not None]
        return b"data: " + SEP.join(shaped) + b"\n\n" if shaped else b""

    def _shape_named(self, joined: bytes) -> bytes:
        """`joined` with each event that still names usage shaped (or dropped), the rest as it is."""
        kept: list[bytes] = []
        pos = 0
        for start, end in spans_naming(joined, _USAGE):
            if start > pos:
                kept.append(joined[pos : start - len(SEP)])
            shaped = self._shape(joined[start:end])
            if shaped is not None:
                kept.append(shaped)
            pos = end + len(SEP)
        if pos < len(joined):
            kept.append(joined[pos:])
        return SEP.join(kept)

    async def aclose(self) -> None:
        self._ended = True
        await self._relay.aclose()

    def _shape(self, data: bytes) -> bytes | None:
        if self._want_usage:
            if _USAGE in data:
                return data
            body = data.rstrip()  # a JSON object: `{...}`
            return body[:-1] + (b',"usage":null}' if len(body) > 2 else b'"usage":null}')  # as OpenAI
        if _USAGE not in data:
            return data
        data = data.replace(_NULL_USAGE, b"")
        if _USAGE not in data:
            return data
        chunk = orjson.loads(data)  # the usage chunk, or a spelling the byte replace missed
        if chunk.pop("usage", None) is not None and not chunk.get("choices"):
            return None  # the usage-only chunk the client didn't ask for
        return orjson.dumps(chunk)
