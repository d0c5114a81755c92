"""The streams part of `aimm bench`: relay throughput (wrk on streamed replies) and capacity
(thousands of paced streams held by one worker), each against the direct path in the same run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import orjson

from aimm_gateway.bench import cpu
from aimm_gateway.bench.loadgen import wrk
from aimm_gateway.bench.procs import LOAD_CPU, aimm, cpu_seconds, cpu_wait_s, free_port, pinned, process
from aimm_gateway.bench.streams import StreamRun, open_fds, percentile, rss_kb

RELAY_CONCURRENCY = 16
LONG_STREAM_CHUNKS = 32  # ~34 events a reply, like a short answer streamed word by word
OPENS_PER_S = 100  # capacity: how fast the client opens its streams (2,000 take 20 s)
PACED_CHUNKS = 60  # 30 s per paced stream at 2 chunks/s: the first is still open when the last opens


@dataclass
class Mocks:
    openai: str
    openai_port: int
    anthropic: str
    long_stream: str
    paced: str


def _mock(stack: ExitStack, fmt: str, *flags: str) -> tuple[str, int]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = aimm("mock-provider", "--format", fmt, "--port", str(port), *flags)
    stack.enter_context(process(pinned(LOAD_CPU, args), f"{url}/v1/models"))
    return url, port


def start_mocks(stack: ExitStack, paced_chunks: int, paced_interval_ms: float) -> Mocks:
    openai, openai_port = _mock(stack, "openai")
    anthropic, _ = _mock(stack, "anthropic")
    long_stream, _ = _mock(stack, "openai", "--stream-chunks", str(LONG_STREAM_CHUNKS))
    paced, _ = _mock(
        stack, "openai", "--stream-chunks", str(paced_chunks), "--chunk-interval-ms", str(paced_interval_ms)
    )
    return Mocks(openai, openai_port, anthropic, long_stream, paced)


def stream_body(model: str) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "Stream to me"}], "stream": True})


def events_per_reply(url: str, headers: dict[str, str], model: str) -> int:
    with httpx.stream("POST", f"{url}/v1/chat/completions", content=stream_body(model), headers=headers) as resp:
        return sum(1 for line in resp.iter_lines() if line.startswith("data: "))


def relay_throughput(
    gateways: dict[str, tuple[str, int]], mocks: Mocks, headers: dict[str, str], duration: float, rounds: int
) -> tuple[dict[str, dict[str, float]], dict[str, cpu.CpuPerRequest]]:
    """SSE events relayed per second by one worker and its CPU per event, interleaved across gateways;
    and each gateway's CPU per streamed reply, round by round (for ratios within a round)."""
    first_url = next(iter(gateways.values()))[0]
    events = events_per_reply(first_url, headers, "long")
    payload = stream_body("long")
    loads = {
        name: (pid, partial(wrk, f"{url}/v1/chat/completions", payload, headers, RELAY_CONCURRENCY, duration))
        for name, (url, pid) in gateways.items()
    }
    result = cpu.interleaved(loads, rounds)
    table = {
        name: {
            "events": events,
            "chunks_per_s": r.rps * events,
            "cpu_us_per_chunk": r.us / events,
            "replies_per_s": r.rps,
        }
        for name, r in result.items()
    }
    return table, result


def _side_by_side(
    urls: list[str], headers: dict[str, str], n: int, at_peak: Callable[[], dict[str, float]]
) -> list[StreamRun]:
    """`n` paced streams to each URL, opened alternately, from a client process of its own (uvloop,
    pinned with the mocks), so that this process (sampling the gateway at the peak) adds nothing to
    the client's latencies; `at_peak` samples when the last URL's streams are all open."""
    args = [sys.executable, "-P", "-m", "aimm_gateway.bench.streams", ",".join(urls), str(n), str(n / OPENS_PER_S)]
    # The usage chunk asked for: the gateway always asks its upstream for it (to settle cost) and
    # drops it for a client that did not, so without it the gateway's client would see one gap of
    # two intervals per stream (usage chunk dropped, then [DONE]) that the direct client does not.
    body = orjson.loads(stream_body("paced")) | {"stream_options": {"include_usage": True}}
    args += [orjson.dumps(body).decode(), orjson.dumps(headers).decode()]
    runs, sample = [StreamRun(n) for _ in urls], {}
    with subprocess.Popen(pinned(LOAD_CPU, args), stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        started, waited = time.monotonic(), cpu_wait_s(proc.pid)
        for line in proc.stdout:
            if line.startswith("peak"):
                sample = at_peak()
            elif line.startswith("result "):
                # still running until it has printed this: how long it waited for CPU 1
                sample["client_cpu_wait"] = (cpu_wait_s(proc.pid) - waited) / (time.monotonic() - started)
                for run, result in zip(runs, orjson.loads(line[7:]), strict=True):
                    for key in ("completed", "errors", "chunks", "peak_open", "ttft_ms", "gaps_ms"):
                        setattr(run, key, result[key])
                    run.each = dict(enumerate(result["each"]))
                    run.sampled = {**sample, "open_at_sample": result["open_at_sample"]}
    return runs


def capacity(
    mocks: Mocks,
    start_gateway: Callable[[], AbstractContextManager[tuple[str, int]]],
    headers: dict[str, str],
    n: int,
) -> dict[str, Any]:
    """`n` paced streams through one gateway worker and `n` straight to the mock, side by side
    (opened alternately, so both see the same moment of the host): what the gateway adds."""
    with start_gateway() as (url, pid):
        for _ in range(3):  # warm-up: pools, lazy imports, allocator arenas
            wrk(f"{url}/v1/chat/completions", stream_body("long"), headers, 32, 2.0)
        time.sleep(1.0)
        idle = {"rss_kb": rss_kb(pid), "fds": open_fds(pid)}
        load = {"start": os.getloadavg()[0]}
        cpu_s, wait_s, wall = cpu_seconds(pid), cpu_wait_s(pid), time.monotonic()
        direct, gw = _side_by_side(
            [f"{mocks.paced}/v1/chat/completions", f"{url}/v1/chat/completions"],
            headers,
            n,
            lambda: {"rss_kb": rss_kb(pid), "fds": open_fds(pid)},
        )
        wall = time.monotonic() - wall
        load["end"], busy, waited = os.getloadavg()[0], (cpu_seconds(pid) - cpu_s) / wall, cpu_wait_s(pid) - wait_s
        time.sleep(2.0)
        after = {"rss_kb": rss_kb(pid), "fds": open_fds(pid)}
    return {
        "load": load,
        "gateway_cpu": busy,
        "gateway_cpu_wait": waited / wall,
        "n": n,
        "opens_per_s": OPENS_PER_S,
        "direct": _summary(direct),
        "gateway": _summary(gw),
        "paired": _paired(direct, gw),
        "idle": idle,
        "peak": gw.sampled,
        "after": after,
    }


def _paired(direct: StreamRun, gw: StreamRun) -> dict[str, float]:
    """What the gateway added, stream by stream: each gateway stream against the direct stream
    opened next to it (a few ms apart), TTFT minus TTFT and gap k minus gap k. A stall of the
    shared client or mock core delays both of a pair, so it cancels here; it does not cancel in
    the difference of the two paths' percentiles, which on a busy host is mostly noise."""
    ttft, gaps = [], []
    for i, mine in gw.each.items():
        theirs = direct.each.get(i, [])
        if mine and theirs:  # the mock's answer differs in length by path (the model name): the common part
            ttft.append(mine[0] - theirs[0])
            gaps += [g - d for g, d in zip(mine[1:], theirs[1:], strict=False)]
    return {
        "pairs": len(ttft),
        "ttft_p50": percentile(ttft, 50),
        "ttft_p99": percentile(ttft, 99),
        "gap_p50": percentile(gaps, 50),
        "gap_p99": percentile(gaps, 99),
    }


def _summary(run: StreamRun) -> dict[str, float]:
    return {
        "completed": run.completed,
        "errors": run.errors,
        "peak_open": run.peak_open,
        "chunks": run.chunks,
        "ttft_p50": percentile(run.ttft_ms, 50),
        "ttft_p99": percentile(run.ttft_ms, 99),
        "ttft_max": max(run.ttft_ms, default=float("nan")),
        "gap_p50": percentile(run.gaps_ms, 50),
        "gap_p99": percentile(run.gaps_ms, 99),
    }
