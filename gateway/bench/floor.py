"""The floor of a Python pass-through: what uvicorn and the h1 client cost with no gateway around them.

An ASGI app that does only what any OpenAI pass-through must: read the body, parse it, set `model`,
post it upstream with the gateway's h1 client, parse the answer, set `model` back, and send it with
as many response headers as the gateway sends. No auth, validation, routing, stages, ledger, metrics
or access log. `aimm bench --latency-only` runs it beside nginx and the gateway, so every run shows
how much of the concurrency-1 budget the server and the client alone use on this host, and how much
is left for the gateway's own work.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from aimm_gateway.bench.iface import lifespan
from aimm_gateway.bench.procs import GATEWAY_CPU, free_port, pinned, process
from aimm_gateway.config import Timeouts
from aimm_gateway.providers.h1 import H1Client

UPSTREAM_ENV = "AIMM_FLOOR_UPSTREAM"
_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-floor"}
# The gateway answers with content-type plus ten headers (request id, model, provider, latency,
# security headers...): the floor sends as many, of similar sizes.
_ANSWER_HEADERS = [(b"content-type", b"application/json")] + [(b"x-floor-%d" % i, b"v" * 24) for i in range(10)]


class FloorProxy:
    """The ASGI app (one upstream origin, from the environment)."""

    def __init__(self, upstream: str) -> None:
        self._url = upstream.rstrip("/") + "/v1/chat/completions"
        self._client: H1Client | None = None
        self._origin = upstream
        self._timeouts = Timeouts()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["method"] != "POST":  # the readiness probe
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = orjson.loads(body)
        request["model"] = "upstream-model"
        if self._client is None:
            self._client = H1Client(self._origin, 1024)
        answer = await self._client.post(self._url, _HEADERS, orjson.dumps(request), self._timeouts)
        reply = orjson.loads(answer.body)
        reply["model"] = "m"
        await send({"type": "http.response.start", "status": answer.status, "headers": _ANSWER_HEADERS})
        await send({"type": "http.response.body", "body": orjson.dumps(reply)})


def app() -> FloorProxy:
    """uvicorn's factory: the upstream comes from `AIMM_FLOOR_UPSTREAM`."""
    return FloorProxy(os.environ[UPSTREAM_ENV])


@contextmanager
def floor_proxy(upstream: str) -> Iterator[str]:
    """The floor proxy in its own process, pinned and served like the gateway (uvloop, httptools,
    no access log, no proxy headers, no server header); yields its base URL."""
    port = free_port()
    code = (
        f"import uvicorn; uvicorn.run('aimm_gateway.bench.floor:app', factory=True, port={port}, loop='uvloop', "
        "http='httptools', log_level='warning', access_log=False, proxy_headers=False, server_header=False)"
    )
    args = pinned(GATEWAY_CPU, [sys.executable, "-P", "-c", code])
    with process(args, f"http://127.0.0.1:{port}/", env={UPSTREAM_ENV: upstream}):
        yield f"http://127.0.0.1:{port}"
