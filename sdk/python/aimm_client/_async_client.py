"""The asyncio client: the same surface as `Client` (from `_surface.Surface`), with `await` and
`async for`; this module says only how it sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from aimm_client._base import Attempts, ClientCore, StreamState, transport_errors
from aimm_client._feed import FeedState, check_channels, decode
from aimm_client._ops import Call, Op
from aimm_client._surface import AsyncRunner, Surface
from aimm_client.types import FeedEvent, StreamChunk

T = TypeVar("T")


class AsyncClient(ClientCore[httpx.AsyncClient, httpx.AsyncBaseTransport], AsyncRunner, Surface):
    """Talks to one aimm gateway from asyncio code; see `Client` for the settings."""

    _http_class = httpx.AsyncClient

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport ---------------------------------------------------------------------------

    async def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        """One call with the retry rules of `_retry`; returns a successful response or raises."""
        attempts = Attempts(self._settings, call)
        while True:
            try:
                response = await self._http.send(attempts.request(self._http), stream=stream)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_failure(exc))
                continue
            if response.status_code < 400:
                return response
            if stream:
                await response.aread()
                await response.aclose()
            await asyncio.sleep(attempts.after_error(response))

    async def _run(self, op: Op[T]) -> T:
        return op.parse(await self._send(op.call))

    def _open_stream(self, call: Call) -> AsyncStream:
        return AsyncStream(self, call)

    # -- live feed ---------------------------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> AsyncFeed:
        """`async with client.subscribe(["metrics"]) as feed: async for event in feed: ...`"""
        return AsyncFeed(self._settings, check_channels(list(channels)))


class AsyncStream(StreamState):
    """An answer being streamed; `async for` it, `aclose()` (or task cancellation) stops it."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        super().__init__(call)
        self._client = client

    async def _open(self) -> httpx.Response:
        if self._response is None:
            return self._opened(await self._client._send(self._call, stream=True))
        return self._response

    async def __aiter__(self) -> AsyncIterator[StreamChunk]:
        response = await self._open()
        try:
            with transport_errors():
                async for line in response.aiter_lines():
                    chunk = self._chunk(line)
                    if chunk is not None:
                        yield chunk
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncStream:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncFeed(FeedState):
    """A live-feed subscription for asyncio code."""

    _ws: ClientConnection | None = None

    async def _open(self) -> ClientConnection:
        if self._ws is None:
            url, options = self._connect_args()
            with self._connecting():
                self._ws = await connect(url, **options)
        return self._ws

    async def recv(self) -> FeedEvent:
        return decode(await (await self._open()).recv())

    async def __aiter__(self) -> AsyncIterator[FeedEvent]:
        ws = await self._open()
        with self._receiving():
            async for message in ws:
                yield decode(message)

    async def aclose(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def __aenter__(self) -> AsyncFeed:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
