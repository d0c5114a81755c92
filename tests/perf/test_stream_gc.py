"""What the cyclic garbage collector is given by open streams, in counts (not timings).

At 2,000 paced streams the inter-chunk tail was the collector's pauses: every object alive across
a stream's wait for its next chunk is promoted and walked again (docs/benchmarks.md, "what the
collector walks"). So: a waiting pass-through stream waits on one bare Future (no chain of
coroutines made per read), and a stream dropped mid-stream leaves no reference cycles (no
garbage only the collector can free). The gateway runs in this process (uvicorn in a thread); the
paced upstream and the clients run in processes of their own, so the counts are the gateway's.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import CoroutineType
from typing import Any

import orjson
import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.bench.procs import aimm, free_port, process
from aimm_gateway.service import Gateway
from tests.perf.served import HEADERS, KEY, LoopSpy, gateway_config, wait_for
from tests.servers import run_asgi_app

STREAM = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
STREAMS = 30
CLIENT = """
import asyncio, json, sys
from aimm_gateway.bench.streams import disconnect_midstream, paced_streams
url, n, mode, body, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode(), json.loads(sys.argv[5])
if mode == "drop":
    print(asyncio.run(disconnect_midstream(url, body, headers, n, 2)))
else:
    run = asyncio.run(paced_streams(url, body, headers, n, 0.3))
    print(run.completed, run.errors)
"""


@pytest.fixture(scope="module")
def paced_upstream() -> Iterator[str]:
    """`aimm mock-provider` in its own process: 12 chunks, 2 per second (6 s per stream)."""
    port = free_port()
    args = aimm("mock-provider", "--format", "openai", "--port", str(port))
    with process([*args, "--stream-chunks", "12", "--chunk-interval-ms", "500"], f"http://127.0.0.1:{port}/v1/models"):
        yield f"http://127.0.0.1:{port}"


def _client(url: str, n: int, mode: str) -> subprocess.Popen[bytes]:
    code = [sys.executable, "-P", "-c", CLIENT, url, str(n), mode, STREAM.decode(), orjson.dumps(HEADERS).decode()]
    return subprocess.Popen(code, stdout=subprocess.PIPE)


def _await_chain(task: asyncio.Task[Any]) -> list[str]:
    """The qualified names of the coroutines a suspended task is inside, outermost first; the
    innermost awaits something that is not a coroutine (a Future's iterator)."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while isinstance(awaited, CoroutineType):
        chain.append(awaited.__qualname__)
        awaited = awaited.cr_await
    return chain


def _streaming_chains(loop: asyncio.AbstractEventLoop) -> list[list[str]]:
    """Every SSE stream task's await chain, read in the loop's own thread (so each is suspended)."""

    async def chains() -> list[list[str]]:
        every = [_await_chain(t) for t in asyncio.all_tasks()]
        return [c for c in every if "SSEResponse.__call__" in c]

    return asyncio.run_coroutine_threadsafe(chains(), loop).result(10)


@pytest.fixture()
def gateway(tmp_path: Path, paced_upstream: str) -> Iterator[tuple[str, LoopSpy]]:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(gateway_config(paced_upstream, upstream_client="h1")))
    os.environ["AIMM_PERF_KEY"] = KEY
    spy = LoopSpy(create_app(Gateway.from_file(config)))
    with run_asgi_app(spy) as url:
        yield f"{url}/v1/chat/completions", spy


def test_a_waiting_stream_waits_on_a_bare_future(gateway: tuple[str, LoopSpy]) -> None:
    url, spy = gateway
    client = _client(url, STREAMS, "paced")
    try:
        loop = wait_for(lambda: spy.loop, 15, "the first request")
        chains = wait_for(
            lambda: c if len(c := _streaming_chains(loop)) == STREAMS else None, 15, "every stream to be open"
        )
        time.sleep(1.2)  # past the first chunks: each stream now waits for a paced one
        chains = _streaming_chains(loop)
    finally:
        out, _ = client.communicate(timeout=60)
    assert out.split() == [str(STREAMS).encode(), b"0"]  # all completed, no errors
    assert len(chains) == STREAMS
    for chain in chains:
        # The response's own coroutine awaits the upstream's Future directly: no coroutine per read
        # (frames, relay, events, body) below it, alive across the ~500 ms wait.
        assert chain[-1] == "SSEResponse.__call__", chain


def test_streams_dropped_midstream_leave_no_cyclic_garbage(gateway: tuple[str, LoopSpy]) -> None:
    url, spy = gateway
    assert _client(url, 2, "drop").communicate(timeout=60)[0].strip() == b"2"  # warm: pools, lazy imports
    assert spy.loop is not None
    loop = spy.loop
    wait_for(lambda: not _streaming_chains(loop) or None, 10, "the warm-up streams to end")
    gc.collect()
    found: list[int] = []
    gc.callbacks.append(cb := lambda phase, info: found.append(info["collected"]) if phase == "stop" else None)
    try:
        dropped = _client(url, STREAMS, "drop").communicate(timeout=60)[0].strip()
        assert dropped == str(STREAMS).encode()
        wait_for(lambda: not _streaming_chains(loop) or None, 10, "the dropped streams to be freed")
        time.sleep(0.5)  # the dropped upstream connections' `connection_lost`
        found.append(gc.collect())
    finally:
        gc.callbacks.remove(cb)
    # Before (main at 44b44da): 960 for 30, 32 objects per dropped stream freed only by the
    # collector (its upstream connection and parser, a cycle through the parser's bound callbacks,
    # and what they held). Now 0.
    assert sum(found) < STREAMS, f"{sum(found)} objects freed by the collector for {STREAMS} dropped streams"
