"""`aimm bench --soak MINUTES` (`make soak`): one worker at half its measured maximum for a long
time, with a mix of plain, streamed and failing requests; RSS, descriptors and p99 must stay flat.

The load is open-loop (a fixed request rate, not a fixed number of connections), so a gateway
that slows down is measured slowing down instead of being offered less work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from aimm_gateway.bench.loadgen import wrk
from aimm_gateway.bench.procs import GATEWAY_CPU, LOAD_CPU, aimm, cpu_seconds, free_port, pinned, process
from aimm_gateway.bench.streams import open_fds, percentile, rss_kb

KEY = "sk-soak"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
SAMPLE_S = 10.0
MAX_IN_FLIGHT = 256
# One cycle of 20 requests: 14 plain, 4 streamed, 1 the upstream fails (503), 1 the client gets wrong (400).
MIX = ("plain",) * 7 + ("stream", "stream") + ("upstream_fails",) + ("plain",) * 7 + ("stream", "stream", "bad")
_MESSAGES = [{"role": "user", "content": "Soak"}]
BODIES = {
    "plain": orjson.dumps({"model": "m", "messages": _MESSAGES}),
    "stream": orjson.dumps({"model": "long", "messages": _MESSAGES, "stream": True}),
    "upstream_fails": orjson.dumps({"model": "failing", "messages": _MESSAGES}),
    "bad": orjson.dumps({"model": "m", "messages": "not a list"}),
}
EXPECTED = {"plain": 200, "stream": 200, "upstream_fails": 503, "bad": 400}


@dataclass
class Window:
    at_s: float
    rss_kb: int
    fds: int
    cpu_s: float
    requests: int
    unexpected: int
    p50_ms: float
    p99_ms: float


@dataclass
class _Live:
    latencies: list[float] = field(default_factory=list)
    requests: int = 0
    unexpected: int = 0
    shed: int = 0  # not sent: MAX_IN_FLIGHT requests were already waiting
    windows: list[Window] = field(default_factory=list)


def _config(port: int, ok_url: str, stream_url: str, failing_url: str) -> dict[str, Any]:
    def model(name: str, url: str) -> dict[str, Any]:
        return {"name": name, "provider": "openai_compatible", "base_url": f"{url}/v1", "model": "m"}

    return {
        "server": {"host": "127.0.0.1", "port": port, "upstream_client": "h1"},
        "auth": {"api_keys": [{"name": "soak", "key": {"env": "AIMM_SOAK_KEY"}}]},
        "models": [model("m", ok_url), model("long", stream_url), model("failing", failing_url)],
    }


@contextmanager
def _stack(workdir: Path) -> Iterator[tuple[str, int]]:
    with ExitStack() as stack:
        urls = []
        for flags in ([], ["--stream-chunks", "32"], ["--fail-rate", "1", "--status-code", "503"]):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            args = aimm("mock-provider", "--format", "openai", "--port", str(port), *flags)
            stack.enter_context(process(pinned(LOAD_CPU, args), f"{urls[-1]}/_mock/stats"))
        port = free_port()
        config = workdir / "soak.yaml"
        config.write_text(yaml.safe_dump(_config(port, *urls)))
        url = f"http://127.0.0.1:{port}"
        args = aimm("gateway", "serve", "--config", str(config), "--workers", "1")
        proc = stack.enter_context(
            process(pinned(GATEWAY_CPU, args), f"{url}/health", env={"AIMM_SOAK_KEY": KEY}, log=workdir / "gw.log")
        )
        yield url, proc.pid


async def _one(session: aiohttp.ClientSession, url: str, kind: str, live: _Live) -> None:
    started = time.perf_counter()
    ok = False
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.post(url, data=BODIES[kind], headers=HEADERS) as resp:
            payload = await resp.read()
            ok = resp.status == EXPECTED[kind] and (kind != "stream" or payload.endswith(b"data: [DONE]\n\n"))
    if kind in ("plain", "stream"):  # failures wait out Retry-After backoff: their latency is the upstream's
        live.latencies.append((time.perf_counter() - started) * 1000)
    live.requests += 1
    live.unexpected += not ok


async def _sample(pid: int, live: _Live, started: float) -> None:
    while True:
        await asyncio.sleep(SAMPLE_S)
        lat, live.latencies = live.latencies, []
        requests, live.requests = live.requests, 0
        live.windows.append(
            Window(
                time.monotonic() - started,
                rss_kb(pid),
                open_fds(pid),
                cpu_seconds(pid),
                requests,
                live.unexpected,
                percentile(lat, 50),
                percentile(lat, 99),
            )
        )
        live.unexpected = 0


async def _drive(url: str, pid: int, rate: float, duration_s: float) -> _Live:
    live = _Live()
    endpoint = f"{url}/v1/chat/completions"
    in_flight: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        sampler = asyncio.create_task(_sample(pid, live, started))
        next_at, i = loop.time(), 0
        while time.monotonic() - started < duration_s:
            if len(in_flight) < MAX_IN_FLIGHT:
                task = asyncio.create_task(_one(session, endpoint, MIX[i % len(MIX)], live))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                live.shed += 1
            i += 1
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await asyncio.gather(*in_flight)
        sampler.cancel()
    return live


def run_soak(minutes: float) -> str:
    with contextlib.suppress(OSError, ValueError):
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this process is the load generator
    with tempfile.TemporaryDirectory() as tmp, _stack(Path(tmp)) as (url, pid):
        for _ in range(2):
            wrk(f"{url}/v1/chat/completions", BODIES["plain"], HEADERS, 16, 3.0)  # warm-up
        # The best of three: one short run on a busy host under-reads the worker's capacity, and the
        # soak would then run far below half of it.
        peak = max(
            (wrk(f"{url}/v1/chat/completions", BODIES["plain"], HEADERS, 16, 10.0) for _ in range(3)),
            key=lambda r: r.rps,
        )
        # Streams cost ~10x a plain request: the mix's rate is half of what the worker can serve of it.
        cost = sum(10 if k == "stream" else 1 for k in MIX) / len(MIX)
        rate = peak.rps / cost / 2
        live = asyncio.run(_drive(url, pid, rate, minutes * 60))
    return _report(minutes, peak.rps, rate, live)


def _report(minutes: float, peak_rps: float, rate: float, live: _Live) -> str:
    w = live.windows
    warm = max(1, len(w) // 6)  # the first sixth is warm-up (allocator arenas, pools, caches)
    base, last = w[warm - 1], w[-1]
    after = w[warm:]
    third = max(1, len(after) // 3)
    early_p99 = sorted(x.p99_ms for x in after[:third])[third // 2]
    late_p99 = sorted(x.p99_ms for x in after[-third:])[third // 2]
    growth = last.rss_kb / base.rss_kb - 1
    lines = [
        "## Soak",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `aimm bench --soak {minutes:g}`, one worker "
        f"pinned to CPU 0; plain requests measured at {peak_rps:,.0f}/s (wrk, concurrency 16), so the mix "
        f"(70 % plain, 20 % streamed, 5 % upstream 503, 5 % bad request) is offered open-loop at **{rate:,.0f}/s**, "
        f"about half the worker's capacity for it; {len(w)} samples of {SAMPLE_S:.0f} s, the first {warm} warm-up.",
        "",
        f"- RSS: {base.rss_kb / 1024:.1f} MB after warm-up, {last.rss_kb / 1024:.1f} MB at the end: "
        f"**{growth:+.1%}** (target ≤ +5 %)",
        f"- file descriptors: {base.fds} after warm-up, {last.fds} at the end, max {max(x.fds for x in after)}",
        f"- p99 of plain and streamed requests (median of the windows in the first vs last third after "
        f"warm-up): {early_p99:.1f} ms vs "
        f"{late_p99:.1f} ms",
        f"- unexpected results (wrong status, stream without [DONE], client error): "
        f"**{sum(x.unexpected for x in w)}** of {sum(x.requests for x in w):,}; not sent (client at "
        f"{MAX_IN_FLIGHT} in flight): {live.shed}",
        "",
        "| t | requests | RSS | fds | CPU | p50 | p99 | unexpected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    step = max(1, len(w) // 12)
    for x in w[::step]:
        lines.append(
            f"| {x.at_s:.0f} s | {x.requests} | {x.rss_kb / 1024:.1f} MB | {x.fds} | {x.cpu_s:.1f} s | "
            f"{x.p50_ms:.1f} ms | {x.p99_ms:.1f} ms | {x.unexpected} |"
        )
    return "\n".join(lines) + "\n"
