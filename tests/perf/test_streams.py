"""Streams at scale, the small version (`make bench` runs 2,000): one worker holds 200 paced
streams with zero errors, and clients that go away mid-stream leave nothing behind (file
descriptors, upstream connections, tasks). Real gateway, real mock upstream, real sockets."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.bench.streams import disconnect_midstream, open_fds, paced_streams, rss_kb, side_by_side
from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from aimm_gateway.service import Gateway
from tests.perf.served import HEADERS, KEY, LoopSpy, gateway_config, serve_gateway, wait_for
from tests.servers import run_asgi_app

STREAM = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
CHUNKS = 16  # 8 s per stream: the last opens long before the first ends
EVENTS = CHUNKS + 3  # the role chunk first, then the finish_reason chunk and [DONE]


@pytest.fixture(scope="module")
def paced_upstream() -> Iterator[str]:
    """2 chunks/s per stream, like a model that thinks while it writes."""
    with run_asgi_app(create_mock_app("openai", FaultSettings(stream_chunks=CHUNKS, chunk_interval_ms=500))) as url:
        yield url


def test_one_worker_holds_200_paced_streams(tmp_path: Path, paced_upstream: str) -> None:
    with serve_gateway(tmp_path, gateway_config(paced_upstream), "--workers", "1") as gw:
        url = f"{gw.url}/v1/chat/completions"
        pid = gw.proc.pid
        warm = asyncio.run(paced_streams(url, STREAM, HEADERS, 10, 0.5))
        assert warm.errors == 0
        idle_fds = open_fds(pid)

        def at_peak() -> dict[str, float]:
            return {"fds": open_fds(pid), "rss_kb": rss_kb(pid)}

        run = asyncio.run(paced_streams(url, STREAM, HEADERS, 200, 1.0, at_peak))
        assert (run.errors, run.completed, run.peak_open) == (0, 200, 200)
        assert run.chunks == 200 * EVENTS  # every event of every stream reached its client
        # All 200 were open in the gateway at once: a client socket and an upstream socket each (10
        # upstream sockets of the warm-up, idle in the pool, are already counted in `idle_fds`).
        assert run.sampled["open_at_sample"] == 200 and run.sampled["fds"] >= idle_fds + 400 - 10
        assert max(run.ttft_ms) < 5000  # nothing waited for another stream to end
        wait_for(lambda: open_fds(pid) <= idle_fds + 2, 15, "the streams' descriptors to be closed")


def test_side_by_side_streams_count_every_event_on_both_paths(tmp_path: Path, paced_upstream: str) -> None:
    """The capacity run's client: streams to the mock and through the gateway, opened alternately;
    each path's first events and gaps are counted once per event, with the usage chunk asked for."""
    body = orjson.loads(STREAM) | {"stream_options": {"include_usage": True}}
    with serve_gateway(tmp_path, gateway_config(paced_upstream), "--workers", "1") as gw:
        urls = [f"{paced_upstream}/v1/chat/completions", f"{gw.url}/v1/chat/completions"]
        direct, through = asyncio.run(side_by_side(urls, orjson.dumps(body), HEADERS, 20, 0.5))
    for run in (direct, through):
        assert (run.errors, run.completed, run.peak_open) == (0, 20, 20)
        assert run.chunks == 20 * (EVENTS + 1)  # the usage chunk too
        assert len(run.ttft_ms) == 20 and len(run.gaps_ms) == 20 * EVENTS
        # stream by stream, in the order opened: its TTFT, then its gaps (what pairs the two paths)
        assert sorted(run.each) == list(range(20)) and all(len(one) == EVENTS + 1 for one in run.each.values())
        assert sorted(one[0] for one in run.each.values()) == sorted(run.ttft_ms)
        assert 400 < sorted(run.gaps_ms)[len(run.gaps_ms) // 2] < 600  # paced at 500 ms


def _established_to(port: int) -> int:
    """TCP connections in ESTABLISHED state whose local port is `port` (the mock's side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            count += int(local.rsplit(":", 1)[1], 16) == port and state == "01"
    return count


@pytest.mark.parametrize("client", ["aiohttp", "h1"])
def test_midstream_disconnects_free_descriptors_upstream_connections_and_tasks(tmp_path: Path, client: str) -> None:
    slow = FaultSettings(stream_chunks=40, chunk_interval_ms=100)  # 4 s: every client leaves long before the end
    with run_asgi_app(create_mock_app("openai", slow)) as upstream:
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump(gateway_config(upstream, upstream_client=client)))
        os.environ["AIMM_PERF_KEY"] = KEY
        spy = LoopSpy(create_app(Gateway.from_file(config)))
        with run_asgi_app(spy) as gw:
            url = f"{gw}/v1/chat/completions"
            assert asyncio.run(disconnect_midstream(url, STREAM, HEADERS, 1, 2)) == 1  # warm: pools, lazy imports
            time.sleep(0.5)
            assert spy.loop is not None
            mock_port = int(upstream.rsplit(":", 1)[1])
            base = (len(asyncio.all_tasks(spy.loop)), _established_to(mock_port), open_fds(os.getpid()))

            dropped = asyncio.run(disconnect_midstream(url, STREAM, HEADERS, 100, 3))
            assert dropped == 100

            def freed() -> tuple[int, int, int] | None:
                now = (len(asyncio.all_tasks(spy.loop)), _established_to(mock_port), open_fds(os.getpid()))
                return now if now[0] <= base[0] and now[1] <= base[1] and now[2] <= base[2] + 2 else None

            wait_for(freed, 10, f"tasks, upstream connections and descriptors back to {base}")
