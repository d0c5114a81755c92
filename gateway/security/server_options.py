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
    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


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
