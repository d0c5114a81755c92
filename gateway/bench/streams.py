"""Many concurrent SSE streams from one asyncio client: capacity (paced, long-lived streams) and
what a mid-stream disconnect leaves behind. wrk measures relay throughput (see runner)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

DATA = b"data: "
DONE = b"data: [DONE]"


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


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], run: StreamRun, delay: float
) -> None:
    await asyncio.sleep(delay)
    started = time.perf_counter()
    last: float | None = None
    done = False
    opened = False
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                return
            opened = True
            run.open_now += 1
            run.peak_open = max(run.peak_open, run.open_now)
            if run.open_now == run.requested:
                run.all_open.set()
            async for line in resp.content:
                if not line.startswith(DATA):
                    continue
                now = time.perf_counter()
                if last is None:
                    run.ttft_ms.append((now - started) * 1000)
                else:
                    run.gaps_ms.append((now - last) * 1000)
                last = now
                run.chunks += 1
                done = line.startswith(DONE)
    except (aiohttp.ClientError, TimeoutError):
        pass
    finally:
        run.open_now -= opened
        if done:
            run.completed += 1
        else:
            run.errors += 1


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
    run = StreamRun(n)
    async with _session(n) as session:
        streams = [_one(session, url, body, headers, run, i * ramp_s / n) for i in range(n)]
        sampler = [_sample_at_peak(run, at_peak, ramp_s + 30)] if at_peak is not None else []
        await asyncio.gather(*streams, *sampler)
    return run


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
