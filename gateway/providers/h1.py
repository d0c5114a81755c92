"""A lean HTTP/1.1 upstream client: an asyncio protocol, httptools' parser, a keep-alive pool.

Why another client: under load, aiohttp's `ClientSession._request` (request objects, header
multidicts, cookie jar, tracing hooks, payload writers) was ~27 % of the gateway's CPU per
pass-through request (py-spy, docs/flame/). An upstream call needs much less: one write of
the request, a C parser for the answer, a pooled connection. Same interface and error kinds
as the aiohttp and httpx transports in `http.py` (`server.upstream_client: h1`).

A reused keep-alive connection can be closed by the server just as the request is written (the
server's idle timeout); if it dies before a single byte of the answer arrives, the server never
saw the request and it is sent once more on a fresh connection. Idle connections older than
`IDLE_S` are not reused at all (servers commonly close idle connections after 5 s).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast
from urllib.parse import urlsplit

import httptools

from aimm_gateway.config import Timeouts
from aimm_gateway.errors import UpstreamError, UpstreamTimeout
from aimm_gateway.providers.deadline import Deadline, Deadlines
from aimm_gateway.providers.http import UpstreamResponse, UpstreamStream, chunks_of

IDLE_S = 4.0
TIMED_OUT = True  # a body waiter's result when the stream idle timeout passed (else None)
_HIGH_WATER = 256 * 1024  # buffered unread body bytes before reading from the socket pauses


class _Dropped(Exception):
    """The connection closed before any byte of the answer: safe to send again on a new one."""


class _Conn(asyncio.Protocol):
    """One connection; one request at a time."""

    # Slots, not a __dict__: one connection lives as long as its stream, thousands may be open.
    __slots__ = (
        "_body",
        "_buffered",
        "_complete",
        "_error",
        "_head",
        "_headers",
        "_keep_alive",
        "_loop",
        "_parser",
        "_paused",
        "_received",
        "_status",
        "_waiter",
        "closed",
        "counted",
        "idle_since",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = True  # holds one of the pool's `limit` places until discarded
        self.idle_since = 0.0
        # Made by `create_connection` in the loop it serves; kept, because each lookup of the
        # running loop is a `getpid` syscall in CPython 3.11 (two futures per request looked it up).
        self._loop = asyncio.get_running_loop()
        # The parser holds this connection's bound methods (a reference cycle): dropped when the
        # connection is lost, so a closed connection is freed by its reference count, not left
        # for the cyclic collector (14 objects per connection).
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._head: asyncio.Future[None] | None = None
        # A list and a future made only while bytes are buffered or awaited (not a deque and an
        # asyncio.Event, ~600 bytes each): one connection lives as long as its stream, thousands
        # may be open, and each object alive across a wait is one more for the cyclic collector
        # to walk (docs/benchmarks.md, "what the collector walks").
        self._body: list[bytes] | None = None
        self._buffered = 0
        self._waiter: asyncio.Future[bool | None] | None = None
        self._complete = False
        self._keep_alive = False
        self._received = False
        self._error: BaseException | None = None
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self._received = True
        assert self._parser is not None  # dropped only when the connection is lost
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"upstream sent malformed HTTP: {exc}", kind="connection"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._parser = None
        if not self._complete:
            self._fail(
                _Dropped() if not self._received else UpstreamError("upstream closed the connection", kind="connection")
            )

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()
        head, self._head = self._head, None  # the sender holds it; not kept for the stream's life
        if head is not None and not head.done():
            head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._body is None:
            self._body = [body]
        else:
            self._body.append(body)
        self._buffered += len(body)
        self._wake()
        if self._buffered > _HIGH_WATER and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        assert self._parser is not None
        self._keep_alive = self._parser.should_keep_alive()  # read here: the parser resets after this
        self._complete = True
        self._wake()

    # -- one exchange ------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def send(self, request: bytes) -> asyncio.Future[None]:
        """Write the request; the future resolves when the answer's headers are in."""
        self._headers, self._body, self._buffered = [], None, 0
        self._complete = self._received = False
        self._error = None
        head = self._head = self._loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        return head

    @property
    def status(self) -> int:
        return int(self._status)

    def headers(self) -> dict[str, str]:
        """The answer's headers (taken once per answer: the list is not kept beside the dict)."""
        headers, self._headers = dict(self._headers), []
        return headers

    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def take(self) -> bytes:
        """Every body byte received so far (b"" if none); reading resumes if it was paused."""
        body, self._body = self._body, None
        piece = b"" if body is None else body[0] if len(body) == 1 else b"".join(body)
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return piece

    @property
    def buffered(self) -> bool:
        """Body bytes are waiting to be taken."""
        return self._body is not None

    @property
    def settled(self) -> bool:
        """`ended` would not be False: the answer is complete or the connection broke."""
        return self._complete or self._error is not None

    @property
    def ended(self) -> bool:
        """The answer is complete; raises if the connection broke before that."""
        if self._complete:
            return True
        if self._error is not None:
            raise self._error if not isinstance(self._error, _Dropped) else _broken()
        return False

    def wait(self) -> asyncio.Future[bool | None]:
        """A future resolved by more body bytes, the end of the answer, or a broken connection."""
        waiter = self._waiter = self._loop.create_future()
        return waiter

    async def read_all(self) -> bytes:
        parts = []
        while True:
            parts.append(self.take())
            if self.ended:
                return b"".join(parts)
            await self.wait()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _time_out(waiter: asyncio.Future[bool | None]) -> None:
    """A stream's idle timeout passed: its waiter resolves with TIMED_OUT, a result and not an
    exception (the relay's task may await it bare, SSEResponse); `H1Body.read` raises the timeout."""
    if not waiter.done():
        waiter.set_result(TIMED_OUT)


def _broken() -> UpstreamError:
    return UpstreamError("upstream closed the connection", kind="connection")


class H1Client:
    """A pool of keep-alive connections to one origin, at most `limit` at a time."""

    def __init__(self, origin: str, limit: int, on_sent: Callable[[], None] | None = None) -> None:
        parts = urlsplit(origin)
        # Called once a request is written, before its answer is awaited: this worker is about to
        # idle (the gateway runs bookkeeping it held for then, gateway/backlog.py). Must not raise.
        self._on_sent = on_sent
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._netloc = parts.netloc
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self._limit = limit
        self._idle: list[_Conn] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        # One timer each, not one per wait (~0.5 KB per handle, thousands alive on paced streams).
        self._deadlines: Deadlines[asyncio.Future[bool | None]] = Deadlines(_time_out)  # streams' idle waits
        self._exchanges: Deadlines[Deadline] = Deadlines(Deadline.expire)  # exchanges' total/first-byte timeouts

    # -- UpstreamClient ----------------------------------------------------------------------------

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> UpstreamResponse:
        try:
            async with Deadline(self._exchanges, timeouts.total_s):
                conn = await self._exchange(url, headers, body, timeouts)
                try:
                    payload = await conn.read_all()
                except BaseException:
                    self._discard(conn)
                    raise
                status, answer_headers = conn.status, conn.headers()
                self._release(conn)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self._netloc} timed out (total)") from None
        return UpstreamResponse(status, answer_headers, _decoded(answer_headers, payload))

    async def open(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> H1Body:
        try:
            async with Deadline(self._exchanges, timeouts.first_byte_s):
                conn = await self._exchange(url, headers, body, timeouts)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self._netloc} timed out (first byte)") from None
        return H1Body(self, conn, timeouts.stream_idle_s)

    @asynccontextmanager
    async def stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts
    ) -> AsyncIterator[UpstreamStream]:
        answer = await self.open(url, headers, body, timeouts)
        del body, headers  # sent: not kept in this frame for the stream's life
        try:
            yield UpstreamStream(answer.status, answer.headers(), chunks_of(answer))
        finally:
            await answer.aclose()

    async def close(self) -> None:
        self._drop_idle()

    # -- pool --------------------------------------------------------------------------------------

    async def _exchange(self, url: str, headers: dict[str, str], body: bytes, timeouts: Timeouts) -> _Conn:
        request = self._request(url, headers, body)
        while True:
            conn = self._reuse()  # the usual case, without a coroutine: an idle connection is there
            reused = conn is not None
            if conn is None:
                conn, reused = await self._acquire(timeouts.connect_s)
            try:
                head = conn.send(request)
                if self._on_sent is not None:
                    self._on_sent()
                await head
                return conn
            except _Dropped:
                self._discard(conn)
                if not reused:
                    raise _broken() from None
                self._drop_idle()  # the server closed one idle connection: the others are as old
            except BaseException:
                self._discard(conn)
                raise

    def _request(self, url: str, headers: dict[str, str], body: bytes) -> bytes:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        lines = [f"POST {target} HTTP/1.1"]
        given = {k.lower() for k in headers}
        if "host" not in given:
            lines.append(f"host: {self._netloc}")
        if "accept-encoding" not in given:
            lines.append("accept-encoding: gzip, deflate")
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise UpstreamError("refused to send a header containing a line break", kind="http")
            lines.append(f"{name}: {value}")
        lines.append(f"content-length: {len(body)}\r\n\r\n")
        return "\r\n".join(lines).encode("latin-1") + body

    def _reuse(self) -> _Conn | None:
        """An idle connection still fresh, if any (the stale ones found on the way are closed)."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            self._discard(conn)
        return None

    async def _acquire(self, connect_s: float) -> tuple[_Conn, bool]:
        while True:
            conn = self._reuse()
            if conn is not None:
                return conn, True
            if self._open < self._limit:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        self._open += 1
        return await self._connect(connect_s), False

    async def _connect(self, connect_s: float) -> _Conn:
        try:
            async with asyncio.timeout(connect_s):
                transport, conn = await asyncio.get_running_loop().create_connection(
                    _Conn, self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
                )
        except BaseException as exc:
            self._open -= 1
            self._wake_one()
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(f"upstream {self._netloc} timed out (connect)") from None
            if isinstance(exc, OSError):
                raise UpstreamError(
                    f"upstream {self._netloc} unreachable: {type(exc).__name__}", status=502, kind="connection"
                ) from None
            raise
        conn.transport = transport  # uvloop may call connection_made only after this returns
        return conn

    def _release(self, conn: _Conn) -> None:
        if not conn.reusable():
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake_one()

    def _discard(self, conn: _Conn) -> None:
        conn.close()
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake_one()

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _done_with(self, conn: _Conn) -> None:
        if conn.reusable():
            self._release(conn)
        else:  # not read to its end: the connection still carries the rest of this answer
            self._discard(conn)


class H1Body:
    """A streamed answer read straight from its connection: one object per open stream (not a
    context manager, a generator and their frames), with no timer of its own while it waits.

    A relay that waits for the next chunk awaits `waiter()` (one bare Future that the connection's
    protocol resolves) and then calls `read`, which then returns without waiting: a waiting stream
    holds no chain of coroutines, only that Future."""

    __slots__ = ("_client", "_conn", "_decoder", "_headers", "_idle_s", "_waiting", "status")

    def __init__(self, client: H1Client, conn: _Conn, idle_s: float) -> None:
        self._client: H1Client | None = client
        self._conn = conn
        self._idle_s = idle_s
        self._waiting: asyncio.Future[bool | None] | None = None  # with its idle deadline registered
        self.status = conn.status
        self._headers = conn.headers()
        self._decoder = _decoder(self._headers)

    def headers(self) -> dict[str, str]:
        """The answer's headers, taken once (a relay that never reads them does not keep them)."""
        headers, self._headers = self._headers, {}
        return headers

    def waiter(self) -> asyncio.Future[bool | None] | None:
        """None if `read` would return without waiting; else the Future it would wait for (more
        bytes, the end, a broken connection or the idle timeout): await it, then `read`."""
        if self._waiting is not None:
            return self._waiting
        conn = self._conn
        if conn.buffered or conn.settled:
            return None
        assert self._client is not None, "read after aclose"
        waiting = self._waiting = conn.wait()
        loop = waiting.get_loop()
        self._client._deadlines.add(waiting, loop, loop.time() + self._idle_s)
        return waiting

    async def read(self) -> bytes | None:
        """Body bytes as they arrive (at least one byte); None at the end of the answer."""
        conn = self._conn
        while True:
            waiting = self._waiting
            if waiting is not None and waiting.done():
                self._done_waiting()
                if waiting.result() is TIMED_OUT and not conn.buffered and not conn.settled:
                    assert self._client is not None
                    raise UpstreamTimeout(f"upstream {self._client._netloc} timed out (stream idle)")
            piece = conn.take()
            if piece:
                self._done_waiting()
                return self._decoder.decompress(piece) if self._decoder is not None else piece
            if conn.ended:
                self._done_waiting()
                return None
            waiting = self.waiter()
            assert waiting is not None
            await waiting  # cancelled (the client left): `aclose` drops the deadline

    def _done_waiting(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and self._client is not None:
            self._client._deadlines.discard(waiting)

    async def aclose(self) -> None:
        """Return the connection to the pool if the answer was read to its end, else close it."""
        self._done_waiting()
        client, self._client = self._client, None
        if client is not None:
            client._done_with(self._conn)


def _decoder(headers: dict[str, str]) -> zlib._Decompress | None:
    encoding = next((v.strip().lower() for k, v in headers.items() if k.lower() == "content-encoding"), "")
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def _decoded(headers: dict[str, str], payload: bytes) -> bytes:
    decoder = _decoder(headers)
    return decoder.decompress(payload) + decoder.flush() if decoder is not None else payload
