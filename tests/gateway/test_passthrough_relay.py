"""The pass-through stream relayed as bytes (OpenAI upstream, OpenAI client, no chunk hooks), over
real HTTP on loopback: every event in order and intact through the official SDK, the upstream's
own bytes on the wire, one batch per upstream read, usage settled from the last chunk, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import openai
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aimm_gateway.config import Timeouts
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.exchange import Upstream as UpstreamExchange
from aimm_gateway.providers.h1 import H1Client
from aimm_gateway.providers.raw_sse import RawEvents
from tests.gateway.conftest import API_KEY, RunningGateway, Upstream, base_config, upstream_model
from tests.servers import run_asgi_app

Start = Callable[[dict[str, Any]], RunningGateway]
PROMPT = "Tell me a long story about relays and bytes"

# Spaces and a field of its own, as an OpenAI-compatible server may send them: a relay that
# decodes and re-encodes would change these bytes, the byte relay sends them as they came.
_CHUNK = (
    b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up",'
    b'"x_vendor": {"note": "kept as sent"},"choices":[{"index":0,"delta":{"content":"%d "},'
    b'"finish_reason":null}],"usage":null}'
)
_LAST = (
    b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,'
    b'"delta":{},"finish_reason":"stop"}],"usage":null}'
)
_USAGE = (
    b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":20,"total_tokens":27}}'
)


def _burst(events: int) -> bytes:
    frames = [b"data: " + _CHUNK % i + b"\n\n" for i in range(events)]
    return b"".join([*frames, b"data: " + _LAST + b"\n\n", b"data: " + _USAGE + b"\n\n", b"data: [DONE]\n\n"])


class BurstUpstream:
    """An OpenAI-compatible upstream that writes its whole stream at once (one socket write)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan: uvicorn carries on without it
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class TwoBursts(BurstUpstream):
    """Two writes a pause apart, CRLF line ends, a keep-alive comment and a two-line `data`."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        one = b': keep-alive\r\n\r\ndata: {"n":1}\r\n\r\ndata: {"n":\r\ndata: 2}\r\n\r\n'
        await send({"type": "http.response.body", "body": one, "more_body": True})
        await asyncio.sleep(0.2)
        two = b'data: {"n":3}\r\n\r\ndata: [DONE]\r\n\r\n'
        await send({"type": "http.response.body", "body": two, "more_body": False})


def _metric(gw: RunningGateway, name: str, model: str) -> float:
    text = httpx.get(f"{gw.url}/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels.get("model") == model
    )


def _sdk(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)


@pytest.mark.parametrize("include_usage", [True, False])
def test_sdk_stream_is_whole_in_order_and_settles_usage(
    include_usage: bool, upstreams: Callable[..., Upstream], start_gateway: Start
) -> None:
    gw = start_gateway(base_config([upstream_model("m", upstreams("openai", stream_chunks=60))]))
    client = _sdk(gw)
    messages: Any = [{"role": "user", "content": PROMPT}]
    plain = client.chat.completions.create(model="m", messages=messages)
    assert plain.usage is not None
    options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
    tokens_before = _metric(gw, "ai_multimodel_output_tokens_total", "m")
    chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True, stream_options=options))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content  # every piece, in order, none twice
    assert len({c.id for c in chunks}) == 1 and len(chunks) >= 60
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and not chunks[-1].choices
        assert usage_chunks[0].usage == plain.usage
    else:
        assert not usage_chunks and all(c.choices for c in chunks)
    # Settled from the final chunk, whether or not the client was shown it.
    added = _metric(gw, "ai_multimodel_output_tokens_total", "m") - tokens_before
    assert added == plain.usage.completion_tokens


def test_one_upstream_read_is_one_write_of_the_upstreams_own_bytes(start_gateway: Start) -> None:
    body = _burst(40)
    with run_asgi_app(BurstUpstream(body)) as url:
        model = {
            "name": "b",
            "provider": "openai_compatible",
            "base_url": f"{url}/v1",
            "api_key": {"env": "AIMM_TEST_UPSTREAM_KEY"},
        }
        gw = start_gateway(base_config([model]))
        request = {
            "model": "b",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}],
        }
        with (
            httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=15) as http,
            http.stream("POST", "/v1/chat/completions", json=request) as resp,
        ):
            assert resp.status_code == 200
            raw = resp.read()
        assert raw == body  # byte for byte: the vendor field's spacing survived, nothing re-encoded
        # The whole stream came in one upstream read: one batch, so no gap between reads to observe
        # (a relay of one event at a time observes one gap per event after the first).
        assert _metric(gw, "ai_multimodel_inter_chunk_latency_seconds_count", "b") == 0
        assert _metric(gw, "ai_multimodel_output_tokens_total", "b") == 20
        without = {**request, "stream_options": {"include_usage": False}}
        with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=15) as http:
            raw = http.post("/v1/chat/completions", json=without).content
    frames = [f for f in raw.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]" and len(frames) == 42  # 40 pieces, the finish, [DONE]; no usage chunk
    assert all(b'"usage"' not in f for f in frames)
    assert orjson.loads(frames[3][6:])["x_vendor"] == {"note": "kept as sent"}
    assert _metric(gw, "ai_multimodel_output_tokens_total", "b") == 40


def test_raw_events_one_batch_per_read_over_h1() -> None:
    async def run(url: str) -> list[list[bytes] | None]:
        client = H1Client(url, 4)
        upstream = UpstreamExchange(client, "burst")
        events = RawEvents(partial(upstream.open, f"{url}/v1/chat/completions", {}, b"{}", Timeouts()), "burst")
        await events.open()
        try:
            batches = [await events.read(), await events.read(), await events.read()]
            return [None if b is None else b.payloads() for b in batches]
        finally:
            await events.aclose()
            await client.close()

    with run_asgi_app(TwoBursts(b"")) as url:
        got = asyncio.run(run(url))
    assert got == [[b'{"n":1}', b'{"n":\n2}'], [b'{"n":3}'], None]


def test_error_event_mid_stream_reaches_the_client_then_the_stream_ends(
    upstreams: Callable[..., Upstream], start_gateway: Start
) -> None:
    gw = start_gateway(base_config([upstream_model("m", upstreams("openai", stream_chunks=8, stream_error_after=4))]))
    errors_before = _metric(gw, "ai_multimodel_errors_total", "m")
    with pytest.raises(openai.APIError):
        for _ in _sdk(gw).chat.completions.create(
            model="m", messages=[{"role": "user", "content": PROMPT}], stream=True
        ):
            pass
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=15) as http:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        frames = [f for f in http.post("/v1/chat/completions", json=body).content.split(b"\n\n") if f]
    assert len(frames) == 5, frames  # four chunks, then the error event, and nothing after it (no [DONE])
    error = orjson.loads(frames[-1][6:])["error"]
    assert "stream error" in error["message"] and set(error) == {"message", "type", "param", "code"}
    assert all("choices" in orjson.loads(f[6:]) for f in frames[:-1])
    assert _metric(gw, "ai_multimodel_errors_total", "m") == errors_before + 2


def test_invalid_json_event_is_the_upstreams_error_not_relayed() -> None:
    body = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: not json\n\ndata: [DONE]\n\n'

    async def run(url: str) -> tuple[list[bytes] | None, UpstreamError]:
        client = H1Client(url, 4)
        events = RawEvents(partial(UpstreamExchange(client, "bad").open, f"{url}/x", {}, b"{}", Timeouts()), "bad")
        await events.open()
        try:
            first = await events.read()
            with pytest.raises(UpstreamError) as caught:
                await events.read()
            return None if first is None else first.payloads(), caught.value
        finally:
            await events.aclose()
            await client.close()

    with run_asgi_app(BurstUpstream(body)) as url:
        first, error = asyncio.run(run(url))
    assert first == [b'{"id":"c1","choices":[{"index":0,"delta":{"content":"a"}}]}']
    assert "invalid JSON" in error.message and error.status == 502


def test_a_stream_that_stalls_past_its_idle_timeout_ends_with_a_timeout_error_event(
    upstreams: Callable[..., Upstream], start_gateway: Start
) -> None:
    """The relay waits for the next chunk on a bare Future (no coroutine of its own): the pool's
    idle timer resolving it still becomes the client's error event, and the stream ends."""
    slow = upstreams("openai", stream_chunks=4, chunk_interval_ms=1500)  # 1.5 s between events
    timeouts = {"connect_s": 2, "first_byte_s": 5, "total_s": 30, "stream_idle_s": 0.5}
    gw = start_gateway(base_config([upstream_model("m", slow, timeouts=timeouts)]))
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=15) as http:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        frames = [f for f in http.post("/v1/chat/completions", json=body).content.split(b"\n\n") if f]
    error = orjson.loads(frames[-1][6:])["error"]
    assert "timed out (stream idle)" in error["message"], error
    assert all("choices" in orjson.loads(f[6:]) for f in frames[:-1])  # the events before the stall, then the error
