"""The fleet-wide live feed through a real redis-server: a console on one replica sees another
replica's breaker opening and budget threshold, its request tail, and metrics merged across
processes (two real `aimm gateway serve` processes), with a stopped process dropping out."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from aimm_gateway.app import create_app
from aimm_gateway.service import Gateway
from tests.backing import RedisServer
from tests.gateway.conftest import Upstream, upstream_model
from tests.live.helpers import live_config, next_on, send, viewer
from tests.perf.served import Served, serve_gateway
from tests.servers import run_asgi_app


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, upstreams: Any) -> Any:
    monkeypatch.setenv("AIMM_REDIS_URL", redis_server.url)
    flaky: Upstream = upstreams("openai", fail_rate=1.0, status_code=500)
    config = live_config(
        state={
            "redis": {"url": {"env": "AIMM_REDIS_URL"}, "timeout_ms": 2000, "key_prefix": f"t{secrets.token_hex(4)}:"}
        },
        budgets=[{"name": "tiny", "limit_usd": "0.00001", "thresholds": [100]}],
    )
    config["models"].append(upstream_model("flaky", flaky, circuit_breaker={"failure_threshold": 1, "timeout_s": 60}))
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(config))

    class Fleet:
        def __enter__(self) -> list[str]:
            self.servers = [run_asgi_app(create_app(Gateway.from_file(path))) for _ in range(2)]
            return [s.__enter__() for s in self.servers]

        def __exit__(self, *exc: object) -> None:
            for s in self.servers:
                s.__exit__(None, None, None)

    return Fleet()


async def test_another_replicas_breaker_and_budget_alerts_arrive(fleet: Any) -> None:
    with fleet as (a, b):
        async with viewer(b, "alerts,models,requests") as ws:
            hello = await next_on(ws, "control", type="hello")
            await send("POST", f"{a}/api/v1/query", json={"prompt": "x", "model": "flaky"})
            change = await next_on(ws, "models", type="model", model="flaky", within=5)
            assert change["status"]["circuit_state"] == "open" and change["pod"] != hello["pod"]
            alert = await next_on(ws, "alerts", kind="breaker_open", within=5)
            assert alert["model"] == "flaky" and alert["pod"] == change["pod"]
            await send("POST", f"{a}/api/v1/query", json={"prompt": "spend it all " * 20, "model": "fast"})
            budget = await next_on(ws, "alerts", kind="budget_threshold", within=5)
            assert budget["budget"] == "tiny" and budget["pod"] == change["pod"]


@pytest.fixture
def two_processes(tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Served]]:
    """Two real `aimm gateway serve` processes (one worker each) sharing the real redis-server."""
    monkeypatch.setenv("AIMM_REDIS_URL", redis_server.url)
    state = {"redis": {"url": {"env": "AIMM_REDIS_URL"}, "timeout_ms": 2000, "key_prefix": f"p{secrets.token_hex(4)}:"}}
    with ExitStack() as stack:
        served = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            served.append(
                stack.enter_context(serve_gateway(tmp_path / name, live_config(state=state), "--workers", "1"))
            )
        yield served


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


async def _snapshot(ws: Any, processes: int, within: float = 10) -> dict[str, Any]:
    """The next merged metrics snapshot counting `processes` gateway processes."""
    deadline = time.monotonic() + within
    while True:
        snap = await next_on(ws, "metrics", within=max(0.1, deadline - time.monotonic()))
        if len(snap["data"]["fleet"]["processes"]) == processes:
            return snap


async def test_a_console_on_one_process_sees_traffic_sent_to_another(two_processes: list[Served]) -> None:
    a, b = (s.url for s in two_processes)
    proc_a = two_processes[0].proc
    async with viewer(a, "metrics") as ws_a:
        pod_a = (await next_on(ws_a, "control", type="hello"))["pod"]
    async with viewer(b, "metrics,requests") as ws:
        pod_b = (await next_on(ws, "control", type="hello"))["pod"]
        await _snapshot(ws, 2)  # B hears A's snapshots (and A hears that B watches the tail)
        # A feeds its tail fleet-wide within a snapshot interval of B's console subscribing.
        sent: set[str] = set()
        tail: dict[str, Any] | None = None
        deadline = time.monotonic() + 10
        while tail is None and time.monotonic() < deadline:
            rid = (await send("POST", f"{a}/api/v1/query", json={"prompt": "to A", "model": "fast"})).json()
            sent.add(rid["request_id"])
            try:
                tail = await next_on(ws, "requests", within=0.3)
            except TimeoutError:
                continue
        assert tail is not None, "A's requests never reached B's tail"
        assert tail["pod"] == pod_a != pod_b and tail["data"]["request_id"] in sent
        assert "to A" not in str(tail)  # metadata only, from any process
        for _ in range(5):
            sent.add(
                (await send("POST", f"{a}/api/v1/query", json={"prompt": "more", "model": "fast"})).json()["request_id"]
            )
        # B's metrics count A's requests (B itself served none) and name both processes.
        deadline = time.monotonic() + 10
        while True:
            data = (await _snapshot(ws, 2))["data"]
            if data["requests_total"] == len(sent) or time.monotonic() > deadline:
                break
        assert data["requests_total"] == len(sent) and data["models"]["fast"]["requests_total"] == len(sent)
        assert {p["pod"] for p in data["fleet"]["processes"]} == {pod_a, pod_b}
        assert data["latency_ms"]["p95"] is not None and "upper bound" in data["fleet"]["latency"]
        # A stopped process drops out after a few seconds of silence.
        await asyncio.to_thread(_stop, proc_a)
        alone = (await _snapshot(ws, 1, within=10))["data"]
        assert [p["pod"] for p in alone["fleet"]["processes"]] == [pod_b] and alone["requests_total"] == 0
