"""`aimm gateway serve --workers 2`: real processes, real signals, real sockets on loopback.

Port sharing, a killed worker replaced, SIGHUP reaching every worker, one /metrics view over
all workers, and SIGTERM draining streams that are still open. More than one worker needs shared
state, so these gateways use the session's real `redis-server`; without it `--workers 2` is refused.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aimm_gateway.mock.faults import FaultSettings
from aimm_gateway.mock.server import create_mock_app
from tests.backing import RedisServer
from tests.perf.served import HEADERS, Served, gateway_config, serve_gateway, wait_for
from tests.servers import run_asgi_app

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with run_asgi_app(create_mock_app("openai", FaultSettings())) as url:
        yield url


def shared(config: dict[str, Any], redis: RedisServer, tmp_path: Path) -> dict[str, Any]:
    """The config with its state in Redis, under a prefix of its own."""
    url_file = tmp_path / "redis-url"
    url_file.write_text(redis.url)
    state = {"redis": {"url": {"file": str(url_file)}, "key_prefix": f"workers-{tmp_path.name}:", "timeout_ms": 2000}}
    return {**config, "state": state}


@pytest.fixture
def two_workers(tmp_path: Path, upstream: str, redis_server: RedisServer) -> Iterator[Served]:
    with serve_gateway(tmp_path, shared(gateway_config(upstream), redis_server, tmp_path), "--workers", "2") as served:
        wait_for(lambda: len(served.children()) == 2, 30, "two workers")
        wait_for(lambda: len(served.metrics()["ai_multimodel_worker_up"]) == 2, 30, "both workers serving")
        yield served


def _fresh_connection_chats(url: str, n: int) -> None:
    """`n` requests, each on its own TCP connection, so the kernel picks a socket for each."""
    for _ in range(n):
        with httpx.Client(base_url=url, headers=HEADERS, timeout=10) as client:
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def _by_worker(samples: list[Any], name: str, **labels: str) -> dict[str, float]:
    return {
        s.labels["worker"]: s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    }


def test_requests_spread_over_workers_and_metrics_are_one_view(two_workers: Served) -> None:
    _fresh_connection_chats(two_workers.url, 40)
    metrics = two_workers.metrics()
    served = _by_worker(metrics["ai_multimodel_requests"], "ai_multimodel_requests_total", model="m", status="200")
    assert set(served) == {"0", "1"}, served  # both workers took connections on the shared port
    assert all(v > 0 for v in served.values()) and sum(served.values()) == 40
    pids = {int(s.labels["pid"]) for s in metrics["ai_multimodel_worker_up"]}
    assert pids == two_workers.children()
    text = httpx.get(f"{two_workers.url}/metrics").text
    assert text.count("# HELP ai_multimodel_requests_total ") == 1  # one family, not one per worker
    # the operator's poll sees the whole pod too (with a key: the stats feed needs the viewer role)
    assert httpx.get(f"{two_workers.url}/api/v1/stats").status_code == 401
    stats = httpx.get(f"{two_workers.url}/api/v1/stats", headers=HEADERS).json()
    assert stats["models"]["m"]["requests_total"] == 40
    assert not stats["config_hash"].startswith("mixed:")


def test_a_killed_worker_is_replaced(two_workers: Served) -> None:
    before = two_workers.children()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> set[int] | None:
        now = two_workers.children()
        return now if len(now) == 2 and victim not in now else None

    after = wait_for(replaced, 30, "a new worker")
    assert len(after & before) == 1  # the other worker was left alone
    wait_for(
        lambda: {int(s.labels["pid"]) for s in two_workers.metrics()["ai_multimodel_worker_up"]} == after,
        30,
        "both workers answering the metrics scrape",
    )
    _fresh_connection_chats(two_workers.url, 20)  # nothing refused after the restart


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever inherited it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_workers_end_with_a_killed_supervisor(two_workers: Served) -> None:
    """SIGKILL (an OOM kill) gives the supervisor no chance to drain: its workers must not linger."""
    workers = two_workers.children()
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    two_workers.proc.kill()
    two_workers.proc.wait(10)
    wait_for(lambda: not any(_alive(pid) for pid in workers), 30, "the orphaned workers to exit")
    with pytest.raises(httpx.TransportError):  # nobody is left on the shared port
        httpx.get(f"{two_workers.url}/health", timeout=2)


def test_sighup_reloads_every_worker(
    two_workers: Served, upstream: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    two_workers.write_config(shared(gateway_config(upstream, ("m", "second")), redis_server, tmp_path))
    time.sleep(1.0)  # the poll interval is an hour: only the forwarded signal can explain a reload
    two_workers.signal(signal.SIGHUP)

    def reloaded_everywhere() -> bool:
        metrics = two_workers.metrics()
        ok = _by_worker(metrics["ai_multimodel_config_reloads"], "ai_multimodel_config_reloads_total", result="success")
        available = _by_worker(
            metrics["ai_multimodel_model_availability"], "ai_multimodel_model_availability", model="second"
        )
        # Each worker reloaded (a second, no-change check after the signal may count as well).
        return set(ok) == {"0", "1"} and min(ok.values()) >= 1 and available == {"0": 1.0, "1": 1.0}

    wait_for(reloaded_everywhere, 20, "both workers to reload")
    assert two_workers.proc.poll() is None


def _read_stream(url: str, out: list[str], first: threading.Event) -> None:
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=HEADERS, timeout=30) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                out.append(line)
                first.set()


def test_sigterm_drains_open_streams(tmp_path: Path, redis_server: RedisServer) -> None:
    paced = FaultSettings(stream_chunks=6, chunk_interval_ms=400)  # ~2 s per stream
    with (
        run_asgi_app(create_mock_app("openai", paced)) as slow,
        serve_gateway(
            tmp_path, shared(gateway_config(slow), redis_server, tmp_path), "--workers", "2", "--grace-period", "15"
        ) as gw,
    ):
        streams: list[list[str]] = [[] for _ in range(6)]
        started = [threading.Event() for _ in streams]
        threads = [
            threading.Thread(target=_read_stream, args=(gw.url, out, ev))
            for out, ev in zip(streams, started, strict=True)
        ]
        for t in threads:
            t.start()
        for ev in started:
            assert ev.wait(15), "a stream never started"
        sent_at = time.monotonic()
        gw.signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        assert gw.proc.wait(30) == 0
        assert time.monotonic() - sent_at < 15
        for out in streams:
            assert out[-1] == "data: [DONE]", out  # every open stream finished, none was cut
            assert len(out) >= 7
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/health", timeout=2)
