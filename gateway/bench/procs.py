"""Start the processes a benchmark measures (mock upstream, gateway) and stop them cleanly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def children(pid: int) -> list[int]:
    """The pids of `pid`'s child processes (none once it has exited)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0, kill_wait_s: float | None = None) -> None:
    """SIGTERM, up to `grace_s` for a clean exit, then SIGKILL (a saturated loop may miss SIGTERM)."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(kill_wait_s)


@contextmanager
def process(
    args: list[str], ready_url: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_http(ready_url)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (utime + stime): steadier than latency on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_wait_s(pid: int) -> float:
    """Time the process's main thread was runnable but waiting for a CPU (the scheduler's run
    queue): on a shared host, the part of a latency that is other processes' doing."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


# The gateway gets CPU 0 to itself; the mock upstreams and the load generator share CPU 1. Without
# pinning, the three compete for both cores and scheduler noise swamps small differences.
GATEWAY_CPU = "0"
LOAD_CPU = "1"


def pinned(cpu: str, args: list[str]) -> list[str]:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return args
    return ["taskset", "-c", cpu, *args]


def aimm(*args: str) -> list[str]:
    return [sys.executable, "-m", "aimm_gateway.cli", "--log-level", "WARNING", *args]
