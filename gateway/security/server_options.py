"""How the gateway's HTTP server is run safely: header-read timeout, idle timeout, TLS.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but has no limit on how long
a client may take to send its request headers: a connection that never finishes them is kept
open forever (slowloris, probe finding 6). `header_timeout_protocol` adds that timer to
uvicorn's httptools protocol: armed when a connection opens and when each request starts,
cancelled when the headers are complete; on expiry the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aimm_gateway.config import HardeningSettings, TlsSettings

log = logging.getLogger("aimm.gateway")


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """One timer per connection, not one per request: a request that starts sets a deadline and
    one whose headers are complete clears it; the timer, when it fires, closes the connection if
    a deadline has passed, re-arms itself for one still ahead, and lapses when none is set. A
    keep-alive connection serving thousands of requests arms it every `header_timeout_s` at
    most (arming and cancelling a uvloop timer per request was ~1 % of a request's CPU)."""

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    _headers_by: float | None = None  # loop time by which the current request's headers are due

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._expect_headers()

    def on_headers_complete(self) -> None:
        self._headers_by = None
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_by = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # uvicorn writes a response's head and its body with two socket writes; for an answer
        # sent whole (a JSON response: start, then body at once) they go out in one.
        cycle.transport = HeadWithBody(self.transport, self.loop)
        super()._start_asgi_task(cycle, app)

    def _expect_headers(self) -> None:
        self._headers_by = self.loop.time() + self.header_timeout_s
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._headers_by, self._check_headers)

    def _check_headers(self) -> None:
        self._header_timer = None
        due = self._headers_by
        if due is None:
            return  # no request is waiting for its headers: armed again when one starts
        if self.loop.time() < due:
            self._header_timer = self.loop.call_at(due, self._check_headers)
        elif not self.transport.is_closing():
            self.transport.close()


class HeadWithBody:
    """The transport one request's cycle writes to: its first write (the response head) is held
    until the next write, and both go out in one socket write, or until the loop's
    next turn if nothing follows at once (a stream's head is not kept waiting for its first
    event); every later write goes straight through. A socket write is a syscall, the most
    expensive single step of a small answer: two per response became one."""

    __slots__ = ("_held", "_loop", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._held = data
            self._loop.call_soon(self._release)
            return
        held = self._held
        if held is None:
            self._transport.write(data)
        else:
            self._held = None
            # A small answer joined (uvloop's one-buffer path); a big one not copied (a writev).
            self._transport.write(held + data) if len(data) < 65536 else self._transport.writelines((held, data))

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else a cycle might use: the real transport's
        return getattr(self._transport, name)


def header_timeout_protocol(timeout_s: float) -> type[HeaderTimeoutProtocol]:
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": timeout_s})


def uvicorn_options(hardening: HardeningSettings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` (the serve command and tests use the same ones)."""
    options: dict[str, Any] = {
        "http": header_timeout_protocol(hardening.header_timeout_s),
        "timeout_keep_alive": max(1, round(hardening.idle_timeout_s)),
    }
    tls = hardening.tls
    if tls is not None:
        options |= {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
        if tls.client_ca_file:
            options["ssl_ca_certs"] = tls.client_ca_file
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return options


class CertReloader:
    """Loads a changed cert/key pair into the live SSLContext: new handshakes use it, no restart."""

    def __init__(self, context: ssl.SSLContext, tls: TlsSettings) -> None:
        self._context = context
        self._tls = tls
        self._seen = self._stamp()
        self._task: asyncio.Task[None] | None = None

    def _stamp(self) -> tuple[int, int]:
        return (os.stat(self._tls.cert_file).st_mtime_ns, os.stat(self._tls.key_file).st_mtime_ns)

    def check(self) -> bool:
        try:
            stamp = self._stamp()
            if stamp == self._seen:
                return False
            self._context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS certificate reload failed, keeping the current one: %s", exc)
            return False
        self._seen = stamp
        log.info("TLS certificate reloaded from %s", self._tls.cert_file)
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tls-reloader")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tls.reload_interval_s)
            self.check()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
