"""The pass-through framing of a read's events, shaped on the joined bytes: the same frames, event
for event, as shaping every event on its own (the reference below), for every place the usage
chunk can take in a read and for clients that did and did not ask for usage."""

from __future__ import annotations

import itertools

import orjson
import pytest

from aimm_gateway.api.passthrough_sse import OpenAIFrames
from aimm_gateway.providers.raw_sse import SEP, Batch, spans_naming

CHUNK = b'{"id":"c","choices":[{"index":0,"delta":{"content":"%d"}}],"usage":null}'
USAGE = b'{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":%d,"total_tokens":9}}'
LAST = b'{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}'
BOTH = b'{"id":"c","choices":[{"index":0,"delta":{"content":"\\"usage\\""}}],"usage":null,"x":{"usage":1}}'
SPACED = b'{"id":"c","choices":[{"index":0,"delta":{"content":"s"}}],"usage": null}'
BARE = b'{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}'


def _frames(want_usage: bool) -> OpenAIFrames:
    return OpenAIFrames(None, want_usage)  # type: ignore[arg-type]  # _frames never touches the relay


def _reference(frames: OpenAIFrames, payloads: list[bytes]) -> bytes:
    shaped = [s for s in map(frames._shape, payloads) if s is not None]
    return b"data: " + SEP.join(shaped) + b"\n\n" if shaped else b""


READS = [
    [CHUNK % 1, CHUNK % 2, CHUNK % 3],
    [CHUNK % 1, USAGE % 7],
    [USAGE % 7],
    [USAGE % 7, CHUNK % 1],
    [CHUNK % 1, USAGE % 7, CHUNK % 2, USAGE % 8, CHUNK % 3],
    [USAGE % 7, USAGE % 8],
    [LAST, USAGE % 7],
    [BOTH, CHUNK % 1],
    [SPACED, CHUNK % 1, USAGE % 2],
    [BARE, CHUNK % 1, BARE],
]


@pytest.mark.parametrize("want_usage", [False, True])
@pytest.mark.parametrize("payloads", READS, ids=range(len(READS)))
def test_a_joined_read_frames_as_each_event_shaped_alone(payloads: list[bytes], want_usage: bool) -> None:
    frames = _frames(want_usage)
    got = frames._frames(Batch(SEP.join(payloads), len(payloads)))
    assert got == _reference(frames, payloads)
    assert all(orjson.loads(data) for data in got[6:-2].split(SEP)) if got else not want_usage


def test_spans_naming_finds_each_event_once_skipping_the_null_usage() -> None:
    payloads = [CHUNK % 1, USAGE % 7, CHUNK % 2, BOTH, USAGE % 8]
    joined = SEP.join(payloads)
    got = [joined[a:b] for a, b in spans_naming(joined, b'"usage"', unless=b'"usage":null')]
    assert got == [USAGE % 7, BOTH, USAGE % 8]
    assert [joined[a:b] for a, b in spans_naming(joined, b'"usage"')] == payloads
    assert spans_naming(SEP.join([CHUNK % 1, CHUNK % 2]), b'"usage"', unless=b'"usage":null') == []
    # With the number of places known, the search stops once they are found (from the end).
    last = [joined[a:b] for a, b in spans_naming(joined, b'"usage"', unless=b'"usage":null', limit=1)]
    assert last == [USAGE % 8]


def test_every_split_of_a_usage_read_frames_the_same() -> None:
    # The same events cut into reads at every place give the same frames, joined or one by one.
    payloads = [CHUNK % 1, CHUNK % 2, USAGE % 5, CHUNK % 3]
    frames = _frames(False)
    for cut in itertools.combinations(range(1, len(payloads)), 2):
        reads = [payloads[a:b] for a, b in zip((0, *cut), (*cut, len(payloads)), strict=True)]
        got = b"".join(frames._frames(Batch(SEP.join(r), len(r))) for r in reads)
        assert got == b"".join(_reference(frames, r) for r in reads)
