"""A streamed answer whose response ends before its first frame still settles.

An async generator closed before its first step runs no `finally`. A committed stream's cleanup
(the upstream closed, the attempt settled as cancelled, the `after` hooks, the request no longer
in flight) lived in such finallys, so a response that ended at its very first `send` (servers
such as Hypercorn and Granian raise there once the client has gone; a shutdown cancels there)
left the stream in flight for good: the backlog stopped holding bookkeeping, the upstream
stream stayed open and the request was never counted.

The gateway's ASGI app is driven here by hand, in-process, so its first `send` can fail; its
upstreams are real mock servers on loopback.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
from tests.gateway.conftest import API_KEY, Upstream, base_config, upstream_model

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True}
CANCELLED = re.compile(r'^ai_multimodel_client_requests_total\{[^}]*code="499"[^}]*\} (\S+)$', re.M)

# (path, body, upstream format): the translated paths (their chunks are a generator); the
# OpenAI route on an OpenAI upstream relays bytes (a class that settles on close), kept as a control.
CASES = [
    ("/v1/chat/completions", CHAT, "anthropic"),
    ("/v1/messages", {**CHAT, "max_tokens": 64}, "openai"),
    ("/api/v1/query/stream", {"prompt": "hi", "model": "m"}, "openai"),
    ("/v1/chat/completions", CHAT, "openai"),
]


class ClientGone(OSError):
    """What an ASGI server raises from `send` once the client has disconnected."""


async def drive(app: Any, path: str, body: dict[str, Any], first_send: str) -> list[str]:
    """One request through the ASGI app; its first `send` fails (`raise`) or is cancelled (`cancel`)."""
    raw = orjson.dumps(body)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"gateway"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"authorization", f"Bearer {API_KEY}".encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    delivered = False
    sent: list[str] = []
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
            gone.set()
            if first_send == "raise":
                raise ClientGone("client disconnected")
            raise asyncio.CancelledError  # as a shutdown's cancel would arrive there

    task = asyncio.ensure_future(app(scope, receive, send))
    with pytest.raises((ClientGone, asyncio.CancelledError)):
        await asyncio.wait_for(task, 10)
    return sent


def cancelled(gateway: Gateway) -> float:
    """Client requests counted as cancelled (499) by the telemetry stage's `after` hook, as
    `/metrics` shows them."""
    gateway.backlog.run()
    found = CANCELLED.search(gateway.metrics.exposition("")[0].decode())
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("first_send", ["raise", "cancel"])
@pytest.mark.parametrize(("path", "body", "fmt"), CASES, ids=[f"{p} on {f}" for p, _, f in CASES])
def test_a_stream_ended_at_its_first_send_settles(
    upstreams: Callable[..., Upstream],
    tmp_path: Path,
    path: str,
    body: dict[str, Any],
    fmt: str,
    first_send: str,
) -> None:
    upstream = upstreams(fmt)
    upstream.set_faults(stream_chunks=50, chunk_interval_ms=100)  # ~5 s: open well past the test's checks
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(base_config([upstream_model("m", upstream)])))
    gateway = Gateway.from_file(config)
    app = create_app(gateway)

    async def scenario() -> None:
        await gateway.start()  # what the app's lifespan runs
        try:
            sent = await drive(app, path, body, first_send)
            assert sent == ["http.response.start"]  # no frame was ever sent
            for _ in range(100):  # settling may take a loop turn or two
                if gateway.backlog.in_flight == 0 and cancelled(gateway) == 1:
                    break
                await asyncio.sleep(0.01)
            assert gateway.backlog.in_flight == 0, "the stream still counts as in flight"
            assert cancelled(gateway) == 1, "the abandoned stream was never counted"
        finally:
            await gateway.stop()

    asyncio.run(scenario())
