"""A real `aimm gateway serve` process (the console script) on a free loopback port, for perf tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aimm_gateway.bench.procs import children, free_port, stop

KEY = "sk-perf-test"
HEADERS = {"authorization": f"Bearer {KEY}"}
T = TypeVar("T")


def gateway_config(upstream_url: str, models: tuple[str, ...] = ("m",), **server: Any) -> dict[str, Any]:
    """OpenAI-compatible models on a mock upstream; `server` settings on top."""
    return {
        "server": {"reload_interval_s": 3600, **server},
        "auth": {"api_keys": [{"name": "perf", "key": {"env": "AIMM_PERF_KEY"}}]},
        "models": [
            {"name": name, "provider": "openai_compatible", "base_url": f"{upstream_url}/v1", "model": "m"}
            for name in models
        ],
    }


class LoopSpy:
    """An in-process gateway app, noting the event loop it is served on (so a test can count its
    tasks or look at them from the loop's own thread)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    config: Path
    log: Path

    def children(self) -> set[int]:
        """The supervisor's worker pids."""
        return set(children(self.proc.pid))

    def metrics(self) -> dict[str, list[Any]]:
        """Samples by family name from one scrape of /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {f.name: f.samples for f in text_string_to_metric_families(text)}

    def write_config(self, config: dict[str, Any]) -> None:
        self.config.write_text(yaml.safe_dump(config))

    def signal(self, signo: signal.Signals) -> None:
        self.proc.send_signal(signo)


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serve_gateway(tmp_path: Path, config: dict[str, Any], *args: str) -> Iterator[Served]:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    aimm = Path(sys.executable).with_name("aimm")
    cmd = [str(aimm), "gateway", "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port), *args]
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, "AIMM_PERF_KEY": KEY}, stdout=log, stderr=subprocess.STDOUT)
        served = Served(proc, f"http://127.0.0.1:{port}", path, log_path)
        try:
            wait_for(lambda: _up(served.url) or proc.poll() is not None, 60, "the gateway to serve")
            assert proc.poll() is None, log_path.read_text()
            yield served
        finally:
            stop(proc, 40)
