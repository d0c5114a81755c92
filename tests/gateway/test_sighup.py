"""`kill -HUP` makes a running `aimm gateway serve` re-read its config file at once.

The process is real (the console script, uvicorn, signals); the poll interval is an hour, so only
the signal can explain the new model showing up within seconds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.perf.served import HEADERS, Served, serve_gateway, wait_for


def _config(models: list[str]) -> dict[str, Any]:
    return {
        "server": {"reload_interval_s": 3600},
        "auth": {"api_keys": [{"name": "tests", "key": {"env": "AIMM_PERF_KEY"}}]},
        "models": [{"name": name, "provider": "mock"} for name in models],
    }


def _models(url: str) -> set[str] | None:
    try:
        resp = httpx.get(f"{url}/v1/models", headers=HEADERS, timeout=2)
    except httpx.HTTPError:
        return None
    return {m["id"] for m in resp.json()["data"]} if resp.status_code == 200 else None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve_gateway(tmp_path, _config(["first"])) as gateway:
        yield gateway


def test_sighup_reloads_the_config_file_now(served: Served) -> None:
    url = served.url
    assert _models(url) == {"first"}
    served.write_config(_config(["first", "second"]))
    time.sleep(1.0)  # the hour-long poll interval must not be what picks the change up
    assert _models(url) == {"first"}
    served.signal(signal.SIGHUP)
    wait_for(lambda: _models(url) == {"first", "second"}, 10, "the reload after SIGHUP")
    assert served.proc.poll() is None  # SIGHUP's default action would have killed it
