"""RawEvents' splitting of an OpenAI SSE byte stream into event payloads (pure: fed piece by piece)."""

from __future__ import annotations

import pytest

from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.raw_sse import RawEvents


def _events() -> RawEvents:
    return RawEvents(None, "up")  # type: ignore[arg-type]  # _split never touches the upstream


def test_whole_events_of_each_piece_in_order_the_rest_kept_for_the_next() -> None:
    raw = _events()
    assert raw._split(b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n"') == [b'{"n":1}', b'{"n":2}']
    assert raw._split(b":3}\n") == []
    assert raw._split(b'\ndata: {"n":4}\n\ndata: [DONE]\n\n') == [b'{"n":3}', b'{"n":4}']
    assert raw.done


def test_comments_multi_line_data_no_space_and_crlf_split_between_pieces() -> None:
    raw = _events()
    assert raw._split(b': ping\r\n\r\ndata:{"a":\r\ndata: 1}\r') == []
    assert raw._split(b'\n\r\ndata: {"b":2}\r\n\r\n') == [b'{"a":\n1}', b'{"b":2}']
    assert not raw.done
    assert raw._split(b"data: [DONE]\r\n\r\n") == [] and raw.done


def test_events_after_done_are_ignored() -> None:
    raw = _events()
    assert raw._split(b'data: {"n":1}\n\ndata: [DONE]\n\ndata: {"n":2}\n\n') == [b'{"n":1}']
    assert raw.done


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (b'data: {"error":{"message":"overloaded"}}\n\n', "stream error: overloaded"),
        (b'data: {"error":"plain text"}\n\n', "stream error: plain text"),
        (b"data: not json\n\n", "invalid JSON"),
    ],
)
def test_an_error_comes_after_the_good_events_of_the_same_read(bad: bytes, says: str) -> None:
    raw = _events()
    assert raw._split(b'data: {"n":1}\n\n' + bad + b"data: [DONE]\n\n") == [b'{"n":1}']
    assert not raw.done and raw._error is not None
    assert says in raw._error.message and isinstance(raw._error, UpstreamError)


def test_a_chunk_that_mentions_error_but_has_choices_is_relayed() -> None:
    chunk = b'{"choices":[{"index":0,"delta":{}}],"error":null}'
    assert _events()._split(b"data: " + chunk + b"\n\n") == [chunk]
