"""Pooled upstream HTTP clients: one connection pool per upstream origin, shared across reloads.

Two interchangeable transports (aiohttp, httpx) sit behind one small interface so the
benchmark can pick by measurement (`server.upstream_client`; see docs/benchmarks.md).
Transport failures become `UpstreamError`s with a kind the breaker understands.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from aimm_gateway.config import Timeouts
from aimm_gateway.errors import UpstreamError, UpstreamTimeout

if TYPE_CHECKING:  # the transports load only where `server.upstream_client` picks them (~20 MB each)
    import aiohttp
    import httpx


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class UpstreamStream:
    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]

    async def read_all(self) -> bytes:
        return b"".join([c async for c in self.chunks])


class UpstreamBody(Protocol):
    """A streamed answer as one object (what a long-lived relay holds instead of a context manager
    and a generator): `read` until None, `aclose` in every case."""

    status: int

    def headers(self) -> dict[str, str]: ...

    def waiter(self) -> asyncio.Future[Any] | None:
        """None, or a Future to await before `read` returns without waiting (see `H1Body`)."""

    async def read(self) -> bytes | None: ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse: ...

    def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[UpstreamStream]: ...

    async def open(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamBody: ...

    async def close(self) -> None: ...


async def chunks_of(answer: UpstreamBody) -> AsyncIterator[bytes]:
    """An UpstreamBody's pieces as an async iterator."""
    while (piece := await answer.read()) is not None:
        yield piece


class EnteredStream:
    """`stream`'s context manager, entered, as an UpstreamBody (aiohttp and httpx: their streams
    are context managers; h1's `open` makes its body object directly)."""

    __slots__ = ("_chunks", "_cm", "_headers", "status")

    def __init__(self, cm: AbstractAsyncContextManager[UpstreamStream], resp: UpstreamStream) -> None:
        self._cm = cm
        self._chunks = resp.chunks
        self._headers = resp.headers
        self.status = resp.status

    @classmethod
    async def enter(cls, cm: AbstractAsyncContextManager[UpstreamStream]) -> EnteredStream:
        return cls(cm, await cm.__aenter__())

    def headers(self) -> dict[str, str]:
        """Taken once, as h1's."""
        headers, self._headers = self._headers, {}
        return headers

    def waiter(self) -> None:
        """No Future to wait on: `read` waits in the library's own stream."""
        return None

    async def read(self) -> bytes | None:
        return await anext(self._chunks, None)

    async def aclose(self) -> None:
        await self._cm.__aexit__(None, None, None)


def _connection_error(url: str, exc: BaseException) -> UpstreamError:
    # Never include headers or bodies: they may carry keys.
    host = urlsplit(url).netloc
    return UpstreamError(f"upstream {host} unreachable: {type(exc).__name__}", status=502, kind="connection")


def _timeout(url: str, what: str) -> UpstreamTimeout:
    return UpstreamTimeout(f"upstream {urlsplit(url).netloc} timed out ({what})")


_Types = tuple[type[BaseException], ...]


class _Translated:
    """Turns a transport's exceptions into `UpstreamError`s, the same way for both transports
    and every phase (total, first byte, stream idle): a timeout, or the host unreachable."""

    __slots__ = ("_errors", "_timeouts", "_url", "_what")

    def __init__(self, url: str, what: str, timeouts: _Types, errors: _Types) -> None:
        self._url, self._what, self._timeouts, self._errors = url, what, timeouts, errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # Returns None: anything else propagates unchanged (mypy knows nothing is swallowed).
        if isinstance(exc, self._timeouts):
            raise _timeout(self._url, self._what) from None
        if isinstance(exc, self._errors):
            raise _connection_error(self._url, exc) from None


class _OpenByStream:
    """`open` for a transport whose stream is a context manager."""

    def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AbstractAsyncContextManager[UpstreamStream]:
        raise NotImplementedError

    async def open(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamBody:
        return await EnteredStream.enter(self.stream(url, headers, body, timeouts))


class AiohttpClient(_OpenByStream):
    def __init__(self, limit: int) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self._errors: tuple[_Types, _Types] = ((TimeoutError,), (aiohttp.ClientError,))  # (timeouts, others)
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            aiohttp = self._aiohttp
            connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse:
        timeout = self._aiohttp.ClientTimeout(total=timeouts.total_s, sock_connect=timeouts.connect_s)
        with _Translated(url, "total", *self._errors):
            async with asyncio.timeout(timeouts.total_s):
                async with self._sess().post(url, data=body, headers=headers, timeout=timeout) as resp:
                    payload = await resp.read()
                    return UpstreamResponse(resp.status, dict(resp.headers), payload)

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[UpstreamStream]:
        aiohttp = self._aiohttp
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s, sock_read=timeouts.stream_idle_s)
        with _Translated(url, "first byte", *self._errors):
            async with asyncio.timeout(timeouts.first_byte_s):
                resp = await self._sess().post(url, data=body, headers=headers, timeout=timeout)
        try:
            yield UpstreamStream(resp.status, dict(resp.headers), self._chunks(url, resp))
        finally:
            resp.release()

    async def _chunks(self, url: str, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        with _Translated(url, "stream idle", *self._errors):
            try:
                async for piece in resp.content.iter_any():
                    yield piece
            except self._aiohttp.ClientPayloadError as exc:  # before the generic ClientError: say what broke
                raise UpstreamError(f"upstream stream broken: {type(exc).__name__}", kind="connection") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxClient(_OpenByStream):
    def __init__(self, limit: int) -> None:
        import httpx

        self._httpx = httpx
        self._errors: tuple[_Types, _Types] = ((TimeoutError, httpx.TimeoutException), (httpx.HTTPError,))
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit), timeout=None
        )

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse:
        timeout = self._httpx.Timeout(timeouts.total_s, connect=timeouts.connect_s)
        with _Translated(url, "total", *self._errors):
            async with asyncio.timeout(timeouts.total_s):
                resp = await self._client.post(url, content=body, headers=headers, timeout=timeout)
                return UpstreamResponse(resp.status_code, dict(resp.headers), resp.content)

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[UpstreamStream]:
        timeout = self._httpx.Timeout(timeouts.first_byte_s, connect=timeouts.connect_s, read=timeouts.stream_idle_s)
        request = self._client.build_request("POST", url, content=body, headers=headers, timeout=timeout)
        with _Translated(url, "first byte", *self._errors):
            async with asyncio.timeout(timeouts.first_byte_s):
                resp = await self._client.send(request, stream=True)
        try:
            yield UpstreamStream(resp.status_code, dict(resp.headers), self._chunks(url, resp))
        finally:
            await resp.aclose()

    async def _chunks(self, url: str, resp: httpx.Response) -> AsyncIterator[bytes]:
        with _Translated(url, "stream idle", *self._errors):
            async for piece in resp.aiter_raw():
                yield piece

    async def close(self) -> None:
        await self._client.aclose()


class UpstreamPools:
    """One client per upstream origin (scheme://host:port), created on first use, kept across reloads.

    `on_sent`: called by the h1 client each time it has written a request, before it awaits the
    answer (the gateway's backlog runs what it held for then); aiohttp and httpx have no such hook."""

    def __init__(self, kind: str = "aiohttp", limit: int = 1000, on_sent: Callable[[], None] | None = None) -> None:
        self._kind = kind
        self._limit = limit
        self._on_sent = on_sent
        if kind in ("aiohttp", "httpx"):
            importlib.import_module(kind)  # a chosen transport loads at start, not in the first upstream call
        self._clients: dict[str, UpstreamClient] = {}

    def for_url(self, url: str) -> UpstreamClient:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        client = self._clients.get(origin)
        if client is None:
            client = self._new(origin)
            self._clients[origin] = client
        return client

    def _new(self, origin: str) -> UpstreamClient:
        if self._kind == "h1":
            from aimm_gateway.providers.h1 import H1Client  # imports this module's response types

            return H1Client(origin, self._limit, self._on_sent)
        return AiohttpClient(self._limit) if self._kind == "aiohttp" else HttpxClient(self._limit)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
