"""Many concurrent SSE streams from one asyncio client: capacity (paced, long-lived streams) and
what a mid-stream disconnect leaves behind. wrk measures relay throughput (see runner)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import aiohttp
import orjson

DATA = b"data: "
DONE = b"data: [DONE]"
STREAM_TIMEOUT_S = 120.0  # a stream not ended this long after the last one opened is an error


@dataclass
class StreamRun:
    """What the client saw of `requested` streams; times in ms."""

    requested: int
    completed: int = 0
    errors: int = 0
    chunks: int = 0
    open_now: int = 0
    peak_open: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    # per stream, by the order it was opened in: its TTFT then its gaps (pairs a stream on one path
    # with the one opened next to it on another: `side_by_side`)
    each: dict[int, list[float]] = field(default_factory=dict)
    sampled: dict[str, float] = field(default_factory=dict)  # what `at_peak` measured with all streams open
    all_open: asyncio.Event = field(default_factory=asyncio.Event)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else float("nan")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _session(n: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)  # one connection per stream, like n clients
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_read=120))


class _Paced(asyncio.Protocol):
    """One paced stream, read by a bare protocol: each read is timestamped as it arrives and its
    SSE events counted with `bytes.count` (a full HTTP client per stream, aiohttp's line reader,
    cost more CPU than the paced mock it shares a core with: the rig, not the gateway, set the
    tail latencies)."""

    __slots__ = (
        "_done",
        "_last",
        "_mine",
        "_opened",
        "_request",
        "_run",
        "_started",
        "_tail",
        "_transport",
        "finished",
    )

    def __init__(self, run: StreamRun, index: int, request: bytes, started: float, done: asyncio.Future[None]) -> None:
        self._run, self._request, self._started, self._done = run, request, started, done
        self._mine: list[float] = []
        run.each[index] = self._mine
        self._transport: asyncio.BaseTransport | None = None
        self._opened = self.finished = False
        self._last: float | None = None
        self._tail = b""  # the end of the previous read: an event marker split across two reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        cast(asyncio.Transport, transport).write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self._opened and not self._open(data):
            return
        seen = self._tail + data
        events = seen.count(DATA)
        if events:
            run = self._run
            first = self._last is None
            value = (now - (self._started if self._last is None else self._last)) * 1000
            (run.ttft_ms if first else run.gaps_ms).append(value)
            same_read = [0.0] * (events - 1)  # events that came in the same read: no gap between them
            run.gaps_ms.extend(same_read)
            self._mine.append(value)
            self._mine.extend(same_read)
            run.chunks += events
            self._last = now
        if DONE in seen:  # the server closes the connection after the response (`connection: close`)
            self.finished = True
        self._tail = seen[-(len(DATA) - 1) :]  # shorter than a marker: never counted twice

    def _open(self, data: bytes) -> bool:
        if not data.startswith(b"HTTP/1.1 200"):
            self.close()
            return False
        run = self._run
        self._opened = True
        run.open_now += 1
        run.peak_open = max(run.peak_open, run.open_now)
        if run.open_now == run.requested:
            run.all_open.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._run.open_now -= self._opened
        if self.finished:
            self._run.completed += 1
        else:
            self._run.errors += 1
        if not self._done.done():
            self._done.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _request(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"host: {parts.netloc}", "connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()] + [f"content-length: {len(body)}", "", ""]
    return parts.hostname or "127.0.0.1", parts.port or 80, "\r\n".join(lines).encode() + body


async def _one(host: str, port: int, request: bytes, run: StreamRun, index: int, at: float, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, at - loop.time()))
    started = time.perf_counter()
    done: asyncio.Future[None] = loop.create_future()
    try:
        _, stream = await loop.create_connection(lambda: _Paced(run, index, request, started, done), host, port)
    except OSError:
        run.errors += 1
        return
    try:
        await asyncio.wait_for(asyncio.shield(done), max(0.0, deadline - loop.time()))
    except TimeoutError:
        stream.close()  # counted as an error when the connection is lost
        await done


async def _sample_at_peak(run: StreamRun, at_peak: Callable[[], dict[str, float]], timeout_s: float) -> None:
    """Sample when all streams are open; if they never all are, the sample taken with the most open."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not run.all_open.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.all_open.wait(), 0.5)
        if run.open_now > run.sampled.get("open_at_sample", -1):
            run.sampled = {**at_peak(), "open_at_sample": run.open_now}
    if run.all_open.is_set():
        run.sampled = {**at_peak(), "open_at_sample": run.open_now}


async def paced_streams(
    url: str,
    body: bytes,
    headers: dict[str, str],
    n: int,
    ramp_s: float,
    at_peak: Callable[[], dict[str, float]] | None = None,
) -> StreamRun:
    """Open `n` streams spread over `ramp_s`, read each to its end; `at_peak` runs once all are open."""
    return (await side_by_side([url], body, headers, n, ramp_s, at_peak))[0]


async def side_by_side(
    urls: list[str],
    body: bytes,
    headers: dict[str, str],
    n: int,
    ramp_s: float,
    at_peak: Callable[[], dict[str, float]] | None = None,
) -> list[StreamRun]:
    """`n` streams to each URL, opened alternately over `ramp_s`: every path sees the same moment of
    a shared host (a gateway and its direct path measured one after the other did not). `at_peak`
    samples when the last URL's streams are all open."""
    runs = [StreamRun(n) for _ in urls]
    now = asyncio.get_running_loop().time()
    deadline = now + ramp_s + STREAM_TIMEOUT_S
    step = ramp_s / n / len(urls)
    streams = [
        _one(*_request(url, body, headers), run, i, now + (i * len(urls) + k) * step, deadline)
        for i in range(n)
        for k, (url, run) in enumerate(zip(urls, runs, strict=True))
    ]
    sampler = [_sample_at_peak(runs[-1], at_peak, ramp_s + 30)] if at_peak is not None else []
    await asyncio.gather(*streams, *sampler)
    return runs


async def _abort_after(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], chunks: int
) -> bool:
    async with session.post(url, data=body, headers=headers) as resp:
        seen = 0
        async for line in resp.content:
            seen += line.startswith(DATA)
            if seen >= chunks:
                resp.close()  # drop the connection mid-stream, like a client that went away
                return True
    return False


async def disconnect_midstream(url: str, body: bytes, headers: dict[str, str], n: int, after_chunks: int) -> int:
    """Open `n` streams, drop each after `after_chunks` events; how many were dropped mid-stream."""
    async with _session(n) as session:
        results = await asyncio.gather(
            *(_abort_after(session, url, body, headers, after_chunks) for _ in range(n)), return_exceptions=True
        )
    return sum(1 for r in results if r is True)


def _report_peak() -> dict[str, float]:
    print("peak", flush=True)  # the parent samples the gateway's RSS and descriptors now
    return {}


def main(argv: list[str]) -> None:
    """`python -m aimm_gateway.bench.streams URL[,URL] N RAMP_S BODY HEADERS_JSON`: the capacity
    run's client in its own process, on uvloop (see `side_by_side`); prints `peak` whenever more of
    the last URL's streams are open than at the last sample, then `result [{json} per URL]`
    (`open_at_sample`: the streams open at the last `peak`)."""
    import uvloop

    urls, n, ramp_s, body, headers = argv[0].split(","), int(argv[1]), float(argv[2]), argv[3].encode(), argv[4]
    runs = uvloop.run(side_by_side(urls, body, orjson.loads(headers), n, ramp_s, _report_peak))
    fields = ("completed", "errors", "chunks", "peak_open", "ttft_ms", "gaps_ms")
    results = [
        {k: getattr(r, k) for k in fields}
        | {"open_at_sample": r.sampled.get("open_at_sample", 0), "each": [r.each.get(i, []) for i in range(n)]}
        for r in runs
    ]
    print("result " + orjson.dumps(results).decode(), flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
