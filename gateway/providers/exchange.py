"""One exchange with an upstream, the same for every wire format: send, map a failed status,
decode the JSON, and for streams the read loop that feeds a format's translator.

Provider modules keep only what differs (URL, auth headers, the pure translation, and which
function maps their errors); everything here is the plumbing they share.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from aimm_gateway.canonical import ChatChunk
from aimm_gateway.config import Timeouts
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.errors import upstream_error
from aimm_gateway.providers.http import UpstreamBody, UpstreamClient, UpstreamResponse, UpstreamStream, chunks_of
from aimm_gateway.providers.sse import SSEParser

# (provider, status, headers, body) -> the caller's error; `upstream_error` unless a format refines it.
ErrorMapper = Callable[[str, int, dict[str, str], bytes], UpstreamError]

DONE = "[DONE]"  # the data of the sentinel event OpenAI-style streams end with
_TRANSPORT_FAILURES = frozenset({"connection", "timeout"})


def decode_json(provider: str, raw: bytes | str) -> dict[str, Any]:
    """An upstream's JSON object; anything else is the upstream's fault (502), never the caller's."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"{provider} returned invalid JSON", kind="http") from None
    if not isinstance(data, dict):
        raise UpstreamError(f"{provider} returned an unexpected JSON value", kind="http")
    return data


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream as a provider sees it: its pooled client, its name in errors, its error mapping."""

    client: UpstreamClient
    provider: str
    on_error: ErrorMapper = upstream_error

    def decode(self, raw: bytes | str) -> dict[str, Any]:
        return decode_json(self.provider, raw)

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse:
        """A POST whose HTTP failure is already an `UpstreamError`."""
        return self._checked(await self.client.post(url, headers, body, timeouts))

    async def post_json(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> dict[str, Any]:
        """A POST answered with a JSON object (the client's answer checked here, not through `post`:
        one coroutine less on every plain request)."""
        return decode_json(self.provider, self._checked(await self.client.post(url, headers, body, timeouts)).body)

    def _checked(self, resp: UpstreamResponse) -> UpstreamResponse:
        if resp.status >= 400:
            raise self.on_error(self.provider, resp.status, resp.headers, resp.body)
        return resp

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[UpstreamStream]:
        """A streamed POST; a failed status is raised (with the error body read) before any chunk."""
        async with self.client.stream(url, headers, body, timeouts) as resp:
            del body, headers  # sent: not kept in this frame for the stream's life
            if resp.status >= 400:
                raise self.on_error(self.provider, resp.status, resp.headers, await resp.read_all())
            yield resp

    async def open(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamBody:
        """`stream` as one body object (for a relay that holds it for the stream's life); a failed
        status is raised (with the error body read) before any chunk."""
        answer = await self.client.open(url, headers, body, timeouts)
        headers = answer.headers()  # taken: not kept for the stream's life
        if answer.status < 400:
            return answer
        try:
            raw = b"".join([piece async for piece in chunks_of(answer)])
        finally:
            await answer.aclose()
        raise self.on_error(self.provider, answer.status, headers, raw)

    def sse(self, resp: UpstreamStream) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        return sse_events(resp.chunks, self.provider)


async def sse_events(chunks: AsyncIterator[bytes], provider: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, decoded data) per SSE event; a `[DONE]` sentinel comes as (DONE, {}) and ends it."""
    parser = SSEParser()
    async for piece in chunks:
        for event in parser.feed(piece):
            if event.data == DONE:
                yield DONE, {}
                return
            yield event.event, decode_json(provider, event.data)


class StreamTranslator(Protocol):
    """What the read loop needs of a format's stream translator (they live in `*_translate`)."""

    @property
    def done(self) -> bool: ...  # the terminal event arrived: nothing more to read

    def feed(self, event: str, data: dict[str, Any]) -> list[ChatChunk]: ...

    def final_usage_chunk(self) -> ChatChunk: ...


async def translate_stream(
    events: AsyncIterator[tuple[str, dict[str, Any]]],
    translator: StreamTranslator,
    provider: str,
    *,
    terminal: str,
    complete: Callable[[], bool] | None = None,
) -> AsyncIterator[ChatChunk]:
    """Translated chunks until the terminal event, then the usage chunk.

    `complete` says whether the answer is whole (default: `translator.done`); a stream that ends
    before that is an error naming `terminal`, so a cut-short answer never looks finished. Once
    it is whole, a broken connection only loses the trailing usage: failing then would make the
    caller retry and pay twice.
    """
    whole = complete or (lambda: translator.done)
    try:
        async for name, data in events:
            for out in translator.feed(name, data):
                yield out
            if translator.done:
                break
    except UpstreamError as exc:
        if not whole() or exc.kind not in _TRANSPORT_FAILURES:
            raise
    if not whole():
        raise UpstreamError(f"{provider} stream ended before {terminal}", kind="connection")
    yield translator.final_usage_chunk()
