"""The lean HTTP/1.1 upstream client against real sockets: a scripted asyncio server on loopback
(for the edge cases: stale keep-alive, chunked + gzip, stalls) and the real mock provider."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest

from aimm_gateway.config import Timeouts
from aimm_gateway.errors import UpstreamError
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from aimm_gateway.providers.h1 import H1Client
from tests.security.test_hardening import _cert
from tests.servers import run_asgi_app

FAST = Timeouts(connect_s=2, first_byte_s=2, total_s=5, stream_idle_s=0.3)


class Scripted:
    """A raw HTTP server: `answer(request_number)` bytes per request; counts connections."""

    def __init__(
        self, answer: Callable[[int], bytes], close_after: bool = False, tls: ssl.SSLContext | None = None
    ) -> None:
        self.answer = answer
        self.tls = tls
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                self.requests += 1
                writer.write(self.answer(self.requests))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.tls)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def ok(body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode() + body


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[str, int], H1Client]]:
    made: list[H1Client] = []

    def make(url: str, limit: int = 100) -> H1Client:
        made.append(H1Client(url, limit))
        return made[-1]

    yield make
    for c in made:
        await c.close()


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """A scripted upstream reads the client's request: its head, then the `{}` body."""
    request = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)
    return request


async def test_one_connection_for_sequential_requests(client_for: Callable[[str, int], H1Client]) -> None:
    server = Scripted(lambda n: ok(b'{"n":%d}' % n))
    async with server as url:
        client = client_for(url, 10)
        bodies = [orjson.loads((await client.post(f"{url}/p", {}, b"{}", FAST)).body) for _ in range(5)]
    assert bodies == [{"n": n} for n in range(1, 6)] and server.connections == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced(
    client_for: Callable[[str, int], H1Client],
) -> None:
    server = Scripted(lambda n: ok(), close_after=True)  # keep-alive promised, then the server hangs up
    async with server as url:
        client = client_for(url, 10)
        for _ in range(3):
            assert (await client.post(f"{url}/p", {}, b"{}", FAST)).status == 200
            await asyncio.sleep(0.05)  # the close reaches the client while the connection sits idle
    assert server.requests == 3 and server.connections == 3


async def test_chunked_gzip_answer_is_decoded(client_for: Callable[[str, int], H1Client]) -> None:
    packed = gzip.compress(b'{"hello":"world"}')
    half = len(packed) // 2
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, packed[:half], len(packed) - half, packed[half:])
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n" + chunks
    async with Scripted(lambda n: answer) as url:
        resp = await client_for(url, 10).post(f"{url}/p", {}, b"{}", FAST)
    assert orjson.loads(resp.body) == {"hello": "world"}


async def test_limit_bounds_open_connections(client_for: Callable[[str, int], H1Client]) -> None:
    server = Scripted(lambda n: ok())
    async with server as url:
        client = client_for(url, 2)
        results = await asyncio.gather(*(client.post(f"{url}/p", {}, b"{}", FAST) for _ in range(8)))
    assert all(r.status == 200 for r in results) and server.connections <= 2


async def test_refused_connection_and_header_injection_are_upstream_errors(
    client_for: Callable[[str, int], H1Client],
) -> None:
    client = client_for("http://127.0.0.1:1", 10)
    with pytest.raises(UpstreamError) as refused:
        await client.post("http://127.0.0.1:1/p", {}, b"{}", FAST)
    assert refused.value.kind == "connection" and refused.value.status == 502
    async with Scripted(lambda n: ok()) as url:
        with pytest.raises(UpstreamError, match="line break"):
            await client_for(url, 10).post(f"{url}/p", {"x-bad": "a\r\nx-injected: 1"}, b"{}", FAST)


async def test_stream_arrives_in_pieces_and_a_stall_is_a_timeout(client_for: Callable[[str, int], H1Client]) -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + b"7\r\ndata: 1\r\n")
        await writer.drain()
        await asyncio.sleep(0.6)  # longer than stream_idle_s
        writer.close()

    server = await asyncio.start_server(stalls, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = client_for(url, 10)
    got: list[bytes] = []
    with pytest.raises(UpstreamError) as stalled:
        async with client.stream(f"{url}/s", {}, b"{}", FAST) as resp:
            assert resp.status == 200
            async for piece in resp.chunks:
                got.append(piece)
    server.close()
    assert got == [b"data: 1"] and stalled.value.kind == "timeout"


async def test_a_body_waiter_is_one_future_resolved_by_the_next_piece_or_the_idle_timeout(
    client_for: Callable[[str, int], H1Client],
) -> None:
    """`waiter()`: None while bytes are buffered, else one Future (the same until it resolves) that
    the connection resolves with the next piece, after which `read` returns without waiting; the
    pool's idle timer resolves it too, and `read` then raises the timeout."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD + b"7\r\ndata: 1\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"7\r\ndata: 2\r\n")  # then silence, longer than stream_idle_s
        await writer.drain()
        await asyncio.sleep(1.0)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    body = await client_for(url, 10).open(f"{url}/s", {}, b"{}", FAST)
    try:
        first = body.waiter()
        if first is not None:  # the head and the first piece may arrive in one read
            await first
        assert body.waiter() is None and await body.read() == b"data: 1"
        second = body.waiter()
        assert second is not None and body.waiter() is second and not second.done()
        await second
        reading = asyncio.ensure_future(body.read())
        await asyncio.sleep(0)
        assert reading.done() and reading.result() == b"data: 2"  # no wait after the Future
        idle = body.waiter()
        assert idle is not None
        await idle  # resolved (not raised) by the idle timer: it may be awaited bare
        with pytest.raises(UpstreamError) as stalled:
            await body.read()
        assert stalled.value.kind == "timeout" and "stream idle" in str(stalled.value)
    finally:
        await body.aclose()
        server.close()


async def test_one_idle_timer_per_pool_times_out_each_stream_at_its_own_deadline(
    client_for: Callable[[str, int], H1Client],
) -> None:
    """The stream idle timeout is one timer per pool, armed for the soonest deadline: a stream with
    a short timeout fails first, one with a longer timeout that keeps receiving is not failed."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        writer.write(SSE_HEAD)
        # /slow: one piece, then silence; /paced: a piece every 0.2 s for 1.2 s, then the end
        pieces = 1 if b"/slow" in request else 6
        for _ in range(pieces):
            writer.write(b"7\r\ndata: 1\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
        if pieces > 1:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        await asyncio.sleep(1.5)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    client = client_for(url, 10)

    async def read(path: str, timeouts: Timeouts) -> tuple[int, str]:
        got = 0
        try:
            async with client.stream(f"{url}{path}", {}, b"{}", timeouts) as resp:
                async for _ in resp.chunks:
                    got += 1
        except UpstreamError as exc:
            return got, exc.kind
        return got, "ok"

    loop = asyncio.get_running_loop()
    started = loop.time()
    paced = asyncio.ensure_future(read("/paced", Timeouts(connect_s=2, first_byte_s=2, total_s=5, stream_idle_s=1.0)))
    slow = await read("/slow", FAST)  # 0.3 s idle: fails while /paced is still receiving
    failed_after = loop.time() - started
    # The timer was armed for /paced's deadline (1 s) first; /slow's sooner one re-armed it.
    assert slow == (1, "timeout") and 0.3 <= failed_after < 0.8
    assert await paced == (6, "ok")
    server.close()


async def test_against_the_mock_provider_plain_and_streamed(client_for: Callable[[str, int], H1Client]) -> None:
    with run_asgi_app(create_mock_app("openai", FaultSettings(stream_chunks=4))) as url:
        client = client_for(url, 10)
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"content-type": "application/json"}
        plain = await client.post(f"{url}/v1/chat/completions", headers, orjson.dumps(chat), FAST)
        assert orjson.loads(plain.body)["object"] == "chat.completion"
        async with client.stream(
            f"{url}/v1/chat/completions", headers, orjson.dumps({**chat, "stream": True}), FAST
        ) as s:
            text = b"".join([p async for p in s.chunks])
        assert text.rstrip().endswith(b"data: [DONE]") and text.count(b"data: ") == 4 + 3
        # an abandoned stream's connection is closed, not handed to the next request mid-answer
        async with client.stream(
            f"{url}/v1/chat/completions", headers, orjson.dumps({**chat, "stream": True}), FAST
        ) as s:
            await anext(s.chunks)
        again = await client.post(f"{url}/v1/chat/completions", headers, orjson.dumps(chat), FAST)
        assert orjson.loads(again.body)["object"] == "chat.completion"


class ThreadedUpstream:
    """A raw HTTP/1.1 server in its own thread: it reads requests while the test's loop is busy."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = threading.Semaphore(0)  # released once per whole request read
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    if not (data := conn.recv(65536)):
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.received.release()
                conn.sendall(ok())

    def close(self) -> None:
        self.sock.close()


async def test_on_sent_runs_once_the_request_is_written_and_before_its_answer_is_awaited() -> None:
    """The hook the gateway's backlog runs on: by the time it is called the upstream can read the
    whole request (it is read in another thread while the hook blocks this loop), and it comes
    before `post`/`open` return, once per request."""
    upstream = ThreadedUpstream()
    events: list[str] = []

    def on_sent() -> None:
        events.append("sent, upstream has it" if upstream.received.acquire(timeout=5) else "sent, not written")

    client = H1Client(upstream.url, 4, on_sent=on_sent)
    try:
        for _ in range(3):
            assert (await client.post(f"{upstream.url}/v1/x", {}, b'{"q":1}', FAST)).status == 200
            events.append("answered")
        body = await client.open(f"{upstream.url}/v1/x", {}, b"{}", FAST)
        events.append("opened")
        assert await body.read() == b'{"ok":true}'
        await body.aclose()
    finally:
        await client.close()
        upstream.close()
    assert events == ["sent, upstream has it", "answered"] * 3 + ["sent, upstream has it", "opened"]


async def test_https_upstream_is_verified_against_the_trusted_cas(
    client_for: Callable[[str, int], H1Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS: a server whose chain leads to a trusted CA answers; one signed by an unknown CA is refused."""
    ca_key, ca = _cert(tmp_path / "ca", "test-ca", ca=True)
    _cert(tmp_path / "server", "localhost", (ca_key, ca.subject))
    _cert(tmp_path / "rogue", "localhost")  # self-signed: no chain to the trusted CA
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.crt"))  # OpenSSL's default trust store, as in a pod

    def tls(name: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
        return ctx

    def https(url: str) -> str:  # by the name in the certificate
        return url.replace("http://127.0.0.1", "https://localhost")

    async with Scripted(lambda n: ok(), tls=tls("server")) as url, Scripted(lambda n: ok(), tls=tls("rogue")) as bad:
        trusted = await client_for(https(url), 10).post(f"{https(url)}/v1/x", {}, b"{}", FAST)
        with pytest.raises(UpstreamError) as refused:
            await client_for(https(bad), 10).post(f"{https(bad)}/v1/x", {}, b"{}", FAST)
    assert trusted.status == 200 and orjson.loads(trusted.body) == {"ok": True}
    assert refused.value.kind == "connection" and "SSLCertVerificationError" in str(refused.value)
