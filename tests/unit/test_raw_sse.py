"""RawEvents' splitting of an OpenAI SSE byte stream into event payloads (pure: fed piece by piece)."""

from __future__ import annotations

import pytest

from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.raw_sse import SEP, Batch, RawEvents


class _Split(RawEvents):
    """`_split` as the payload lists the tests compare ([] for no event)."""

    def split(self, piece: bytes) -> list[bytes]:
        batch = self._split(piece)
        return [] if batch is None else batch.payloads()


def _events() -> _Split:
    return _Split(None, "up")  # type: ignore[arg-type]  # _split never touches the upstream


def test_whole_events_of_each_piece_in_order_the_rest_kept_for_the_next() -> None:
    raw = _events()
    assert raw.split(b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n"') == [b'{"n":1}', b'{"n":2}']
    assert raw.split(b":3}\n") == []
    assert raw.split(b'\ndata: {"n":4}\n\ndata: [DONE]\n\n') == [b'{"n":3}', b'{"n":4}']
    assert raw.done


def test_comments_multi_line_data_no_space_and_crlf_split_between_pieces() -> None:
    raw = _events()
    assert raw.split(b': ping\r\n\r\ndata:{"a":\r\ndata: 1}\r') == []
    assert raw.split(b'\n\r\ndata: {"b":2}\r\n\r\n') == [b'{"a":\n1}', b'{"b":2}']
    assert not raw.done
    assert raw.split(b"data: [DONE]\r\n\r\n") == [] and raw.done


def test_events_after_done_are_ignored() -> None:
    raw = _events()
    assert raw.split(b'data: {"n":1}\n\ndata: [DONE]\n\ndata: {"n":2}\n\n') == [b'{"n":1}']
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
    assert raw.split(b'data: {"n":1}\n\n' + bad + b"data: [DONE]\n\n") == [b'{"n":1}']
    assert not raw.done and raw._error is not None
    assert says in raw._error.message and isinstance(raw._error, UpstreamError)


def test_a_chunk_that_mentions_error_but_has_choices_is_relayed() -> None:
    chunk = b'{"choices":[{"index":0,"delta":{}}],"error":null}'
    assert _events().split(b"data: " + chunk + b"\n\n") == [chunk]


def test_a_read_of_single_line_events_stays_joined_as_sent() -> None:
    # The usual read: the payloads as one piece of the upstream's own bytes, counted, never split.
    batch = _events()._split(b'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n":3}\n\n')
    assert isinstance(batch, Batch) and batch.count == 3
    assert batch.joined == b'{"n":1}' + SEP + b'{"n":2}' + SEP + b'{"n":3}'
    assert batch.payloads() == [b'{"n":1}', b'{"n":2}', b'{"n":3}']


def test_an_event_read_line_by_line_keeps_its_own_payload_even_with_a_separator_inside() -> None:
    # Multi-line data whose second line is empty and third starts with "data: " (relayed as sent,
    # like any payload that opens an object): the joined bytes hold SEP inside one payload, so the
    # batch keeps the payloads it found.
    batch = _events()._split(b'data: {"a":1}\n\ndata: {"b":\ndata:\ndata: data: 2}\n\n')
    assert batch is not None and batch.count == 2
    assert batch.payloads() == [b'{"a":1}', b'{"b":\n\ndata: 2}']
