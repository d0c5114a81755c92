"""A fault-injecting HTTP proxy in front of the test API server.

The operator under test talks to the API server through this proxy (plain HTTP on loopback,
forwarded over TLS), so a test can make the real API server's answers fail on purpose, e.g.
return 409 Conflict to the next two writes of a ConfigMap, and see what the operator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import threading
from dataclasses import dataclass, field

from aiohttp import ClientConnectionResetError, ClientSession, TCPConnector, web

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    remaining: int
    hits: int = 0

    def body(self) -> dict:
        reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}.get(self.status, "Injected")
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": f"injected by the test proxy: {reason}",
            "reason": reason,
            "code": self.status,
        }


@dataclass
class Seen:
    method: str
    path: str
    status: int
    query: str = ""  # the query string (watch=true tells a watch from a list)


@dataclass
class FaultProxy:
    upstream: str
    ca_file: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, method: str, path_regex: str, status: int, times: int) -> Fault:
        fault = Fault(method.upper(), re.compile(path_regex), status, times)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.seen.clear()

    def _match(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.remaining > 0 and f.method == method and f.path.search(path):
                    f.remaining -= 1
                    f.hits += 1
                    return f
        return None

    # ---------------------------------------------------------------- server
    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="fault-proxy")
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("fault proxy did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._setup())
        ready.set()
        self._loop.run_forever()

    async def _setup(self) -> None:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        self._session = ClientSession(connector=TCPConnector(ssl=ctx, limit=0), auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._match(request.method, request.path)
        if fault is not None:
            with self._lock:
                self.seen.append(Seen(request.method, request.path, fault.status))
            return web.json_response(fault.body(), status=fault.status)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None, timeout=None
        ) as up:
            with self._lock:
                self.seen.append(Seen(request.method, request.path, up.status, request.query_string))
            resp = web.StreamResponse(
                status=up.status, headers={k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            )
            try:
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except (ConnectionError, ClientConnectionResetError):
                pass  # the client went away (a watch it stopped)
            return resp

    def stop(self) -> None:
        async def _close() -> None:
            me = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()
            await self._runner.cleanup()
            await self._session.close()

        if getattr(self, "_loop", None) is not None:
            with contextlib.suppress(Exception):  # best effort: the process is exiting anyway
                asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
