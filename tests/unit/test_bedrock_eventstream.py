"""AWS event-stream framing: the mock's encoder against botocore's parser, and the adapter's decoder.

Oracle: botocore's `EventStreamBuffer` (CRC-validating frame parser) and its full typed
`EventStream` for ConverseStream, the exact path a boto3 client takes.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from aimm_gateway.errors import UpstreamError
from aimm_gateway.mock import bedrock_wire
from aimm_gateway.mock.engine import generate
from aimm_gateway.providers.eventstream import StreamMessage, iter_eventstream
from tests.unit.test_bedrock_adapter import SERVICE, assert_stream_event

MODEL_ID = "amazon.nova-pro-v1:0"
STREAM_SHAPE = SERVICE.operation_model("ConverseStream").output_shape.members["stream"]


def frames(events: list[dict[str, Any]]) -> bytes:
    return b"".join(bedrock_wire.stream_frame(e) for e in events)


def mock_events(body: dict[str, Any], chunks: int = 4) -> list[dict[str, Any]]:
    out = generate(bedrock_wire.parse_converse(MODEL_ID, body))
    return list(bedrock_wire.render_converse_stream(MODEL_ID, out, chunks))


class _Raw:
    """The raw-stream interface botocore's EventStream reads from."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._pieces = [data[i : i + piece] for i in range(0, len(data), piece)]

    def stream(self) -> Any:
        yield from self._pieces

    def close(self) -> None:
        pass


def boto3_events(data: bytes, piece: int = 13) -> list[dict[str, Any]]:
    return list(EventStream(_Raw(data, piece), STREAM_SHAPE, EventStreamJSONParser(), "ConverseStream"))


async def _chunks(data: bytes, piece: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def decode(data: bytes, piece: int = 7) -> list[StreamMessage]:
    return [m async for m in iter_eventstream(_chunks(data, piece), "bedrock")]


# ---------------------------------------------------------------------------------------------
# The mock's encoder


def test_botocore_reads_the_mocks_frames_split_anywhere() -> None:
    frame = bedrock_wire.encode_frame({":event-type": "messageStart", ":message-type": "event"}, b'{"role":"x"}')
    data = frame * 3
    rng = random.Random(7)
    cuts = sorted(rng.sample(range(1, len(data)), 10))
    buffer = EventStreamBuffer()
    messages = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        buffer.add_data(data[start:end])
        messages.extend(buffer)
    assert len(messages) == 3
    assert messages[0].headers == {":event-type": "messageStart", ":message-type": "event"}
    assert messages[0].payload == b'{"role":"x"}'


@pytest.mark.parametrize("offset", [8, 20, -1, -6])  # prelude CRC, a header byte, message CRC, payload
def test_botocore_rejects_a_corrupted_frame(offset: int) -> None:
    frame = bytearray(bedrock_wire.event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}))
    frame[offset] ^= 0x01
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(frame))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_boto3s_typed_parser_reads_a_whole_mock_stream() -> None:
    weather = {
        "name": "get_weather",
        "inputSchema": {"json": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}},
    }
    body = {
        "messages": [{"role": "user", "content": [{"text": "Weather?"}]}],
        "toolConfig": {"tools": [{"toolSpec": weather}]},
    }
    events = mock_events(body)
    for event in events:
        assert_stream_event(event)
    parsed = boto3_events(frames(events))
    assert parsed == events  # the "p" padding is dropped by the typed parser, as for real Bedrock streams
    names = [next(iter(e)) for e in parsed]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert "contentBlockStart" in names


def test_boto3_raises_the_mocks_exception_frame() -> None:
    data = (
        bedrock_wire.stream_frame({"messageStart": {"role": "assistant"}}) + bedrock_wire.BedrockDialect().error_frame()
    )
    with pytest.raises(EventStreamError) as info:
        boto3_events(data)
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"


# ---------------------------------------------------------------------------------------------
# The adapter's decoder


async def test_decoder_yields_events_exceptions_and_errors() -> None:
    data = (
        bedrock_wire.stream_frame({"messageStart": {"role": "assistant"}})
        + bedrock_wire.exception_frame("throttlingException", "slow down")
        + bedrock_wire.encode_frame(
            {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "oops"}, b""
        )
    )
    messages = await decode(data, piece=5)
    assert [(m.kind, m.name) for m in messages] == [
        ("event", "messageStart"),
        ("exception", "throttlingException"),
        ("error", "InternalFailure"),
    ]
    assert orjson.loads(messages[0].payload) == {"role": "assistant", "p": "abcdefghijklm"}
    assert orjson.loads(messages[1].payload) == {"message": "slow down"}
    assert messages[2].error_message == "oops"


async def test_decoder_turns_a_bad_crc_into_an_upstream_error() -> None:
    data = bytearray(frames([{"messageStart": {"role": "assistant"}}]))
    data[-2] ^= 0xFF
    with pytest.raises(UpstreamError) as info:
        await decode(bytes(data))
    assert info.value.kind == "connection" and "ChecksumMismatch" in info.value.message


async def test_decoder_drops_a_trailing_partial_frame() -> None:
    events = [{"messageStart": {"role": "assistant"}}, {"messageStop": {"stopReason": "end_turn"}}]
    data = frames(events)
    messages = await decode(data[:-3], piece=4)
    assert [m.name for m in messages] == ["messageStart"]
