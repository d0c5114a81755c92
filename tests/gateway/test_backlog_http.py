"""The backlog end to end: a real gateway on loopback, an OpenAI-format mock upstream reached
through the h1 client, one request at a time (the case where an answer's bookkeeping is held
until the worker waits on its next upstream call). Every reader shows every answer sent, and
the access log has every line: after the fallback delay, and at shutdown."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, Upstream, base_config, upstream_model
from tests.live.helpers import next_on, viewer
from tests.servers import run_asgi_app

HELD = 60.0  # the fallback timer never fires within a test: only the drains settle
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
OK_COUNT = re.compile(r'^ai_multimodel_requests_total\{model="m",provider="[^"]+",status="200"\} (\S+)$', re.M)


@contextmanager
def serving(tmp_path: Path, upstream: Upstream, delay_s: float) -> Iterator[tuple[str, Gateway]]:
    """A gateway on the h1 client whose backlog holds for `delay_s`; stopped (lifespan) on exit."""
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(base_config([upstream_model("m", upstream)], server={"upstream_client": "h1"})))
    gateway = Gateway.from_file(path)
    gateway.backlog.delay_s = delay_s
    with run_asgi_app(create_app(gateway)) as url:
        yield url, gateway


def chat(client: httpx.Client, request_id: str, **extra: Any) -> httpx.Response:
    body = {**CHAT, **extra}
    resp = client.post("/v1/chat/completions", json=body, headers={"x-request-id": request_id})
    resp.read()
    return resp


def native_stream(client: httpx.Client, request_id: str) -> httpx.Response:
    resp = client.post(
        "/api/v1/query/stream", json={"prompt": "hi", "model": "m"}, headers={"x-request-id": request_id}
    )
    resp.read()
    return resp


def prometheus_ok(url: str) -> int:
    found = OK_COUNT.findall(httpx.get(f"{url}/metrics").text)
    return int(float(found[0])) if found else 0


def stats_ok(url: str) -> int:
    models = httpx.get(f"{url}/api/v1/stats", headers=ADMIN).json()["models"]
    return int(models.get("m", {}).get("requests_total", 0))


def live_ok(url: str) -> int:
    models = httpx.get(f"{url}/api/v1/metrics", headers=ADMIN).json()["models"]
    return int(models.get("m", {}).get("requests_total", 0))


def admin_ok(url: str) -> int:
    models = httpx.get(f"{url}/admin/models/status", headers=ADMIN).json()["models"]
    return int(next(m for m in models if m["name"] == "m")["requests_total"])


def ws_ok(url: str) -> int:
    async def welcome() -> int:
        async with viewer(url, "metrics") as ws:
            snapshot = await next_on(ws, "metrics")
        return int(snapshot["data"]["models"].get("m", {}).get("requests_total", 0))

    return asyncio.run(welcome())


def access_lines(out: str) -> list[dict[str, Any]]:
    return [r for line in out.splitlines() if line.startswith("{") and "route" in (r := orjson.loads(line))]


def settles_to_zero(gateway: Gateway) -> bool:
    """Requests in flight, as the backlog counts them, back to 0 (the server thread may be finishing)."""
    for _ in range(250):
        if gateway.backlog.in_flight == 0:
            return True
        time.sleep(0.02)
    return False


READERS: list[tuple[str, Callable[[str], int]]] = [
    ("/metrics", prometheus_ok),
    ("/api/v1/stats", stats_ok),
    ("/api/v1/metrics", live_ok),
    ("/admin/models/status", admin_ok),
    ("/api/v1/ws welcome", ws_ok),
]


def test_every_reader_sees_each_answer_at_once_and_shutdown_writes_every_line(
    upstreams: Callable[..., Upstream], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream = upstreams("openai")
    sent: list[str] = []
    with serving(tmp_path, upstream, HELD) as (url, gateway):
        client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30)
        calls = [
            lambda rid: chat(client, rid),
            lambda rid: chat(client, rid, stream=True),  # the pass-through relay settles it
            lambda rid: native_stream(client, rid),  # the chunk relay (`_follow`) settles it
            lambda rid: chat(client, rid),
            lambda rid: chat(client, rid, stream=True),
        ]
        for n, ((name, reader), call) in enumerate(zip(READERS, calls, strict=True), start=1):
            rid = f"backlog-{n}"
            assert call(rid).status_code == 200
            sent.append(rid)
            assert settles_to_zero(gateway)
            assert reader(url) == n, f"{name} after answer {n}"
        for rid, fails in (("backlog-404", chat(client, "backlog-404", model="nope")),):
            assert fails.status_code == 404 and settles_to_zero(gateway)
            sent.append(rid)
        refused = client.post("/v1/chat/completions", json={**CHAT, "model": "nope", "stream": True})
        assert refused.status_code == 404 and settles_to_zero(gateway)
        assert chat(client, "backlog-last").status_code == 200  # held: no reader, no next request
        sent.append("backlog-last")
        client.close()
    logged = [r["request_id"] for r in access_lines(capsys.readouterr().out)]
    assert set(sent) <= set(logged), f"missing after shutdown: {set(sent) - set(logged)}"


def test_alone_in_flight_a_line_goes_out_within_the_fallback_delay(
    upstreams: Callable[..., Upstream], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream = upstreams("openai")
    with (
        serving(tmp_path, upstream, 0.002) as (url, _gateway),
        httpx.Client(base_url=url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30) as client,
    ):
        for n in range(3):
            assert chat(client, f"timer-{n}").status_code == 200
            # No reader and no next upstream call: only the timer can write the line.
            assert logged_within(capsys, f"timer-{n}", 1.0), f"timer-{n}: no access-log line within 1 s"


def logged_within(capsys: pytest.CaptureFixture[str], request_id: str, within: float) -> bool:
    for _ in range(int(within / 0.01)):
        if any(r["request_id"] == request_id for r in access_lines(capsys.readouterr().out)):
            return True
        time.sleep(0.01)
    return False


def test_streams_cut_or_abandoned_leave_the_in_flight_count(upstreams: Callable[..., Upstream], tmp_path: Path) -> None:
    """A stream counts as in flight until it settles, whatever its end; a leak would switch the
    holding off for good (every later answer would see another request in flight)."""
    upstream = upstreams("openai")
    with (
        serving(tmp_path, upstream, HELD) as (url, gateway),
        httpx.Client(base_url=url, headers={"authorization": f"Bearer {API_KEY}"}, timeout=30) as client,
    ):
        upstream.set_faults(stream_chunks=20, chunk_interval_ms=50)
        for path, body in (
            ("/v1/chat/completions", {**CHAT, "stream": True}),
            ("/api/v1/query/stream", {"prompt": "hi", "model": "m"}),
        ):
            with client.stream("POST", path, json=body) as resp:
                assert resp.status_code == 200
                next(resp.iter_raw())  # the first bytes, then the client goes away
            assert settles_to_zero(gateway), f"{path}: abandoned"
        upstream.set_faults(stream_chunks=8, chunk_interval_ms=0, cut_stream_after=2)
        assert chat(client, "cut", stream=True).status_code == 200  # committed, then the upstream hangs up
        assert settles_to_zero(gateway), "cut by the upstream"
        upstream.set_faults(cut_stream_after=None)
        assert chat(client, "after").status_code == 200
        assert settles_to_zero(gateway) and gateway.backlog.in_flight == 0
        assert prometheus_ok(url) == 1  # only the last answer succeeded, and /metrics shows it at once
