"""`aimm bench --stream-memory N`: what one open stream keeps alive in the gateway, by allocation site.

The gateway runs in this process under tracemalloc (uvicorn + uvloop in a thread, the same
options as `aimm gateway serve`), the paced mock and the client (N streams held open) in their
own processes, so the snapshot difference with all N open is the gateway's alone. Python
objects only: uvloop's and httptools' C structures and kernel socket buffers are not seen by
tracemalloc, which is why the report also gives RSS per stream measured in the same run.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from aimm_gateway.app import create_app
from aimm_gateway.bench.procs import LOAD_CPU, aimm, free_port, pinned, process
from aimm_gateway.bench.streams import rss_kb
from aimm_gateway.config import parse_config
from aimm_gateway.serve import uvicorn_config
from aimm_gateway.service import Gateway

KEY = "sk-bench"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
BODY = b'{"model":"paced","messages":[{"role":"user","content":"Stream to me"}],"stream":true}'
CHUNKS, INTERVAL_MS = 60, 500  # 30 s per stream: all are still open when the last opens
CLIENT = """
import asyncio, sys
from aimm_gateway.bench.streams import paced_streams
url, n = sys.argv[1], int(sys.argv[2])
run = asyncio.run(paced_streams(url, {body!r}, {headers!r}, n, n / 100))
print(run.completed, run.errors)
"""


def _config(upstream: str, port: int, client: str) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port, "upstream_client": client, "max_connections_per_upstream": 4096},
        "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_KEY"}}]},
        "observability": {"access_log": {"enabled": False}},
        "models": [{"name": "paced", "provider": "openai_compatible", "base_url": f"{upstream}/v1", "model": "m"}],
    }


def profile(n: int, client: str = "h1", top: int = 30) -> str:
    with ExitStack() as stack, tempfile.TemporaryDirectory():
        mock_port = free_port()
        mock = f"http://127.0.0.1:{mock_port}"
        args = aimm("mock-provider", "--format", "openai", "--port", str(mock_port))
        args += ["--stream-chunks", str(CHUNKS), "--chunk-interval-ms", str(INTERVAL_MS)]
        stack.enter_context(process(pinned(LOAD_CPU, args), f"{mock}/v1/models"))
        port = free_port()
        os.environ["AIMM_BENCH_KEY"] = KEY
        gateway = Gateway(parse_config(_config(mock, port, client)))
        server = uvicorn.Server(uvicorn_config(create_app(gateway), gateway, 5.0, host="127.0.0.1", port=port))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        try:
            return _measure(url, n, top, client, lambda: int(gateway.metrics.in_flight.value))
        finally:
            server.should_exit = True
            thread.join(10)


def _measure(url: str, n: int, top: int, client: str, in_flight: Callable[[], int]) -> str:
    while True:
        try:
            httpx.get(url.replace("/v1/chat/completions", "/health"), timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    _run_client(url, 20).wait()  # warm-up: pools, lazy imports, allocator arenas
    gc.collect()
    tracemalloc.start(8)
    before, rss_before = tracemalloc.take_snapshot(), rss_kb_self()
    proc = _run_client(url, n)
    time.sleep(n / 100 + 3)  # opened at 100/s; each lasts 30 s
    # Divided by the streams open at the sample, not by N: on a loaded host (tracing slows the
    # worker) not all N may be open yet, and some early ones may have ended.
    opened = max(1, in_flight())
    after, rss_after = tracemalloc.take_snapshot(), rss_kb_self()
    out, _ = proc.communicate()
    tracemalloc.stop()
    return _report(before, after, n, opened, rss_after - rss_before, out.decode().strip(), top, client)


def rss_kb_self() -> int:
    return rss_kb(int(Path("/proc/self").resolve().name))


def _run_client(url: str, n: int) -> subprocess.Popen[bytes]:
    code = CLIENT.format(body=BODY, headers=HEADERS)
    return subprocess.Popen(pinned(LOAD_CPU, [sys.executable, "-P", "-c", code, url, str(n)]), stdout=subprocess.PIPE)


def _report(
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    n: int,
    opened: int,
    rss: int,
    client_out: str,
    top: int,
    kind: str,
) -> str:
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [
        f"`aimm bench --stream-memory {n}` (upstream client {kind}); client completed/errors: {client_out}",
        "",
        f"- Python heap (tracemalloc) with {opened} of {n} streams open at the sample: "
        f"{total / 1024 / opened:.1f} KB per open stream; "
        f"RSS {rss / opened:.1f} KB per open stream (tracing itself adds to RSS)",
        "",
        "| allocated at | KB per stream | objects per stream |",
        "|---|---|---|",
    ]
    for s in stats[:top]:
        frame = s.traceback[0]
        where = f"{_short(frame.filename)}:{frame.lineno}"
        lines.append(f"| {where} | {s.size_diff / 1024 / opened:.2f} | {s.count_diff / opened:.1f} |")
    return "\n".join(lines) + "\n"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/gateway/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
