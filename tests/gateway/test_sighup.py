"""`kill -HUP` makes a running `aimm gateway serve` re-read its config file at once.

The process is real (the console script, uvicorn, signals); the poll interval is an hour, so only
the signal can explain the new model showing up within seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

KEY = "sighup-test-key"


def _config(models: list[str]) -> dict[str, Any]:
    return {
        "server": {"reload_interval_s": 3600},
        "auth": {"api_keys": [{"name": "tests", "key": {"env": "AIMM_SIGHUP_KEY"}}]},
        "models": [{"name": name, "provider": "mock"} for name in models],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _models(url: str) -> set[str] | None:
    try:
        resp = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {KEY}"}, timeout=2)
    except httpx.HTTPError:
        return None
    return {m["id"] for m in resp.json()["data"]} if resp.status_code == 200 else None


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(["first"])))
    port = _free_port()
    aimm = Path(sys.executable).with_name("aimm")
    args = [str(aimm), "gateway", "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(args, env={**os.environ, "AIMM_SIGHUP_KEY": KEY}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _models(url) or proc.poll() is not None, 30, "the gateway to serve")
        assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
        yield proc, url, config
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_sighup_reloads_the_config_file_now(served: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    proc, url, config = served
    assert _models(url) == {"first"}
    config.write_text(yaml.safe_dump(_config(["first", "second"])))
    time.sleep(1.0)  # the hour-long poll interval must not be what picks the change up
    assert _models(url) == {"first"}
    proc.send_signal(signal.SIGHUP)
    _wait(lambda: _models(url) == {"first", "second"}, 10, "the reload after SIGHUP")
    assert proc.poll() is None  # SIGHUP's default action would have killed it
