"""Serve ASGI apps over real HTTP on loopback, for tests that need a socket.

    with run_asgi_app(app) as base_url:
        httpx.get(f"{base_url}/health")

The app runs under uvicorn (uvloop + httptools when installed, like production) in a
background thread with its own event loop, on a free port picked by the OS.
`gateway_processes` starts whole `aimm gateway serve` processes instead (a fleet on one host).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from aimm_gateway.bench.procs import children
from tests.backing import free_port

__all__ = ["gateway_processes", "run_asgi_app"]


@contextmanager
def run_asgi_app(app: Any, *, host: str = "127.0.0.1", startup_timeout: float = 10.0) -> Iterator[str]:
    """Run ``app`` until the block exits; yields its base URL (``http://127.0.0.1:PORT``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))  # port 0: the OS picks a free port, no race with other tests
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread, startup_timeout)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the ASGI test server exited during startup (see its log above)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the ASGI test server did not start within {timeout}s")
        time.sleep(0.005)


@contextmanager
def gateway_processes(
    config: dict[str, Any], env: Mapping[str, str], workdir: Path, count: int, startup_timeout: float = 90.0
) -> Iterator[list[str]]:
    """`count` separate `aimm gateway serve` processes on one config; yields their base URLs."""
    path = workdir / "fleet.yaml"
    path.write_text(yaml.safe_dump(config))
    ports = [free_port() for _ in range(count)]
    logs = [workdir / f"gateway-{i}.log" for i in range(count)]
    procs = [
        subprocess.Popen(
            [".venv/bin/aimm", "gateway", "serve", "--config", str(path), "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + startup_timeout  # cold interpreters on a busy machine
        for url, proc, log in zip(urls, procs, logs, strict=True):
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        stuck = [why for proc, log in zip(procs, logs, strict=True) if (why := stopped_or_why(proc, log)) is not None]
        assert not stuck, "\n\n".join(stuck)


SIGTERM_GRACE_S = 10.0


def stopped_or_why(proc: subprocess.Popen[bytes], log: Path, grace_s: float = SIGTERM_GRACE_S) -> str | None:
    """None once `proc` has exited after SIGTERM; else (killed) what it and its workers were doing:
    their Python stacks (py-spy) and the log's end, so a slow shutdown is diagnosed, not just seen."""
    try:
        proc.wait(grace_s)
        return None
    except subprocess.TimeoutExpired:
        pass
    pids = [proc.pid, *children(proc.pid)]
    stacks = [_py_stack(pid) for pid in pids]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    return (
        f"pid {proc.pid} still running {grace_s:.1f} s after SIGTERM (killed); "
        + "\n".join(stacks)
        + f"\n--- log end:\n{log.read_text()[-3000:]}"
    )


def _py_stack(pid: int) -> str:
    spy = Path(".venv/bin/py-spy")
    if not spy.exists():
        return f"--- pid {pid}: no py-spy to show its stack"
    out = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
    return f"--- pid {pid}:\n{out.stdout or out.stderr}"
