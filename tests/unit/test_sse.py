from __future__ import annotations

from collections.abc import AsyncIterator

from aimm_gateway.providers.sse import SSEEvent, encode_sse, iter_sse


async def _feed(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for p in pieces:
        yield p


async def test_events_split_across_reads() -> None:
    raw = b'event: message_start\ndata: {"a":1}\n\n: keep-alive\n\ndata: [DONE]\r\n\r\n'
    pieces = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    events = [e async for e in iter_sse(_feed(pieces))]
    assert events == [SSEEvent("message_start", '{"a":1}'), SSEEvent("message", "[DONE]")]


async def test_event_cut_off_before_blank_line_is_dropped() -> None:
    events = [e async for e in iter_sse(_feed([b"data: a\n\ndata: x\ndata: y"]))]
    assert events == [SSEEvent("message", "a")]


def test_encode() -> None:
    assert encode_sse(b"{}") == b"data: {}\n\n"
    assert encode_sse(b"{}", "ping") == b"event: ping\ndata: {}\n\n"
