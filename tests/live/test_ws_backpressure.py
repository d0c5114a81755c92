"""The live feed under load: 500 subscribers at once, and a stalled one that is dropped
(close 1013) while the others keep receiving and requests keep their pace."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlparse

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.gateway.conftest import ADMIN_TOKEN
from tests.live.helpers import Start, eventually, live_config, next_on, user_headers, viewer, ws_url

SUBSCRIBERS = 500


async def test_500_concurrent_subscribers_all_receive(start_gateway: Start) -> None:
    gw = start_gateway(live_config(live={"max_subscribers": 1000}))
    conns: list[ClientConnection] = []
    try:
        for _ in range(0, SUBSCRIBERS, 50):  # 50 handshakes at a time: the host has 2 cores
            batch = [viewer(gw.url, "requests,metrics", open_timeout=30) for _ in range(50)]
            conns += await asyncio.gather(*(c.__aenter__() for c in batch))
        assert gw.gateway.live.count == SUBSCRIBERS
        async with httpx.AsyncClient(headers=user_headers()) as client:
            resp = await client.post(f"{gw.url}/api/v1/query", json={"prompt": "to everyone", "model": "fast"})
        rid = resp.json()["request_id"]

        async def got_it(ws: ClientConnection) -> bool:
            event = await next_on(ws, "requests", within=20)
            return bool(event["data"]["request_id"] == rid)

        assert all(await asyncio.gather(*(got_it(ws) for ws in conns)))
        assert gw.gateway.live.dropped_total == 0
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    assert await eventually(lambda: gw.gateway.live.count == 0)
    assert gw.gateway.live.count == 0 and not gw.gateway.live.requests_subscribed


def tiny_socket(url: str) -> socket.socket:
    """A client socket with a tiny receive buffer, so an unread connection backs up quickly."""
    parsed = urlparse(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((parsed.hostname, parsed.port))
    return sock


async def timed_queries(url: str, n: int) -> list[float]:
    """Latencies of `n` queries, 8 at a time (each also makes a `requests` event)."""
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(headers=user_headers(), timeout=30) as client:

        async def one(i: int) -> float:
            async with limit:
                t0 = time.perf_counter()
                resp = await client.post(f"{url}/api/v1/query", json={"prompt": f"load {i}", "model": "fast"})
                resp.raise_for_status()
                return time.perf_counter() - t0

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def burst(url: str, n: int) -> None:
    """`n` requests in one batch call (each item is a request on the live tail)."""
    async with httpx.AsyncClient(headers=user_headers(), timeout=60) as client:
        resp = await client.post(f"{url}/api/v1/batch", json=[{"prompt": "b", "model": "fast"}] * n)
        assert resp.json()["succeeded"] == n


@pytest.mark.timeout(120)
async def test_a_stalled_subscriber_is_dropped_and_nobody_else_notices(start_gateway: Start) -> None:
    gw = start_gateway(live_config(live={"subscriber_queue": 64}))
    hub = gw.gateway.live
    baseline = sorted(await timed_queries(gw.url, 50))
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    # The stalled one never reads: websockets stops reading its socket once max_queue frames
    # wait, the tiny receive buffer fills, then the server's socket buffer, then its queue.
    stalled = await connect(
        ws_url(gw.url, "requests"),
        additional_headers=headers,
        sock=tiny_socket(gw.url),
        max_queue=1,
        compression=None,  # JSON events compress well: uncompressed, the buffers fill sooner
    )
    async with viewer(gw.url, "requests", ping_interval=None) as healthy:
        received = 0

        async def count() -> None:
            nonlocal received
            async for raw in healthy:
                if orjson.loads(raw).get("channel") == "requests":
                    received += 1

        counter = asyncio.get_running_loop().create_task(count())
        latencies: list[float] = []
        sent = 0
        for _ in range(40):  # until the stalled subscriber falls 64 messages behind (or give up)
            await burst(gw.url, 200)
            latencies += await timed_queries(gw.url, 10)
            sent += 210
            if hub.dropped_total:
                break
        assert hub.dropped_total == 1, "the stalled subscriber was never dropped"
        assert hub.count == 1  # the healthy one is still there
        await burst(gw.url, 100)
        after_drop = await timed_queries(gw.url, 20)
        sent += 120
        await eventually(lambda: received >= sent)
        assert received == sent, "the healthy subscriber missed events"  # stall or not, it saw every request
        counter.cancel()
    # Requests kept their pace while a subscriber was stuck (a generous bound: the host is shared).
    p50, worst = sorted(latencies)[len(latencies) // 2], max(latencies + after_drop)
    assert p50 < max(10 * baseline[len(baseline) // 2], 0.05), (p50, baseline[len(baseline) // 2])
    assert worst < 2.0, worst
    # Once it reads again it finds the reason it was dropped.
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(stalled.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    assert "too slow" in closed.value.rcvd.reason


async def test_over_the_subscriber_limit_is_a_503(start_gateway: Start) -> None:
    gw = start_gateway(live_config(live={"max_subscribers": 2}))
    async with viewer(gw.url) as a, viewer(gw.url) as b:
        await next_on(a, "control", type="hello")
        await next_on(b, "control", type="hello")
        with pytest.raises(InvalidStatus) as info:
            async with viewer(gw.url):
                pass
        assert info.value.response.status_code == 503
