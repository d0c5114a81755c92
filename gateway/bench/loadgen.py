"""Load generation: wrk for throughput and latency (C, so the client costs little CPU),
and an asyncio client for time-to-first-token, which wrk cannot see."""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from aimm_gateway.bench.procs import LOAD_CPU, pinned

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    max_ms: float = 0.0  # the longest request of the run


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, body: bytes, headers: dict[str, str], connections: int, duration_s: float) -> WrkResult:
    lua = "wrk.method = 'POST'\n" + f"wrk.body = [==[{body.decode()}]==]\n"
    for k, v in headers.items():
        lua += f'wrk.headers["{k}"] = "{v}"\n'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
        script = f.name
    try:
        out = subprocess.run(
            pinned(
                LOAD_CPU,
                ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency", "-s", script, url],
            ),
            capture_output=True,
            text=True,
            check=True,
            timeout=duration_s + 30,
        ).stdout
    finally:
        Path(script).unlink(missing_ok=True)
    return parse_wrk(out)


def parse_wrk(out: str) -> WrkResult:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise ValueError(f"wrk output has no {pct}% line:\n{out}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    longest = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", out, re.M)
    max_ms = float(longest.group(1)) * _UNITS[longest.group(2)] if longest else 0.0
    return WrkResult(rps, latency("50"), latency("99"), errors, requests, max_ms)


def longest_request_ms(url: str, duration_s: float, during: Callable[[], None] | None = None) -> float:
    """wrk's longest `GET url` over `duration_s` on 4 connections, `during` run in this thread once
    wrk has started (it must return before the run ends). wrk's timeout is set past the run: with its
    default (2 s) a longer request is counted as a timeout and left out of the latency figures, so a
    stall of seconds would read as none. A run with any error raises."""
    args = ["wrk", "-t1", "-c4", f"-d{duration_s:g}s", f"--timeout={duration_s + 30:g}s", "--latency", url]
    proc = subprocess.Popen(pinned(LOAD_CPU, args), stdout=subprocess.PIPE, text=True)
    if during is not None:
        during()
    out, _ = proc.communicate(timeout=duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{out}")
    result = parse_wrk(out)
    if result.errors:
        raise RuntimeError(
            f"wrk saw {result.errors} errors (timeouts or non-2xx): the figure would leave them out\n{out}"
        )
    return result.max_ms


async def _ttft_once(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as resp:
        resp.raise_for_status()
        first: float | None = None
        async for line in resp.content:
            if first is None and line.startswith(b"data: "):
                first = time.perf_counter() - started
        assert first is not None
        return first


async def _ttft(url: str, body: bytes, headers: dict[str, str], n: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm-up: connections, caches
            await _ttft_once(session, url, body, headers)
        return [await _ttft_once(session, url, body, headers) for _ in range(n)]


def ttft_ms(url: str, body: bytes, headers: dict[str, str], n: int = 300) -> tuple[float, float]:
    """p50 and p99 time to the first SSE data frame, in ms, at concurrency 1."""
    samples = sorted(s * 1000 for s in asyncio.run(_ttft(url, body, headers, n)))
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]
