"""`aimm bench --scrape-only`: what a Prometheus scrape costs a gateway with many models.

One gateway worker (pinned to the gateway's core) serves N models on one mock upstream, and
each model has answered a plain and a streamed request, so each has its full set of series (the
request counters, tokens, cost, the duration, time-to-first-token and inter-chunk histograms).
Then, interleaved per round and per tree (`--ab REF`):
- the scrape itself: `GET /metrics` asking for OpenMetrics as Prometheus does, wall time and size;
- the stall it puts on other requests: wrk keeps 4 connections on `GET /health` (served by the
  same event loop as chat requests) for `duration` seconds, once with a scrape every second and
  once without; the longest request of each run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from aimm_gateway.bench.ab import checkout_env, resolve
from aimm_gateway.bench.loadgen import longest_request_ms
from aimm_gateway.bench.procs import GATEWAY_CPU, aimm, free_port, pinned, process

KEY = "sk-bench"
OPENMETRICS = "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"


@dataclass
class Tree:
    name: str
    env: dict[str, str]
    scrape_ms: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    stats_ms: list[float] = field(default_factory=list)
    stall_with: list[float] = field(default_factory=list)
    stall_without: list[float] = field(default_factory=list)


def _config(upstream: str, port: int, models: int) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_KEY"}}]},
        "observability": {"access_log": {"enabled": False}},
        "models": [
            {"name": f"m{i:05d}", "provider": "openai_compatible", "base_url": f"{upstream}/v1", "model": "m"}
            for i in range(models)
        ],
    }


@contextmanager
def _gateway(tree: Tree, upstream: str, models: int, workdir: Path) -> Iterator[str]:
    port = free_port()
    path = workdir / f"scrape-{tree.name}.yaml"
    path.write_text(yaml.safe_dump(_config(upstream, port, models)))
    url = f"http://127.0.0.1:{port}"
    args = aimm("gateway", "serve", "--config", str(path), "--workers", "1")
    env = {"AIMM_BENCH_KEY": KEY, **tree.env}
    with process(pinned(GATEWAY_CPU, args), f"{url}/health", env=env, log=workdir / f"scrape-{tree.name}.log"):
        yield url


def _warm(url: str, models: int) -> None:
    """A plain and a streamed answer from every model: each gets its full set of series."""
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i in range(models):
            for stream in (False, True):
                body = {"model": f"m{i:05d}", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
                client.post("/v1/chat/completions", json=body).raise_for_status()


def _scrape(client: httpx.Client) -> tuple[float, int]:
    started = time.perf_counter()
    resp = client.get("/metrics", headers={"accept": OPENMETRICS})
    resp.raise_for_status()
    return (time.perf_counter() - started) * 1000, len(resp.content)


def _stats_poll(client: httpx.Client) -> float:
    """The operator's stats poll (`GET /api/v1/stats`, every 10 s per pod), wall time in ms."""
    started = time.perf_counter()
    client.get("/api/v1/stats", headers={"authorization": f"Bearer {KEY}"}).raise_for_status()
    return (time.perf_counter() - started) * 1000


def _scrapes_every_second(client: httpx.Client, duration: float) -> Callable[[], None]:
    def scrapes() -> None:
        end = time.monotonic() + duration - 1.0
        while time.monotonic() + 1.0 < end:
            time.sleep(1.0)
            _scrape(client)

    return scrapes


def measure(refs: list[str], models: int, rounds: int, duration: float, workdir: Path, upstream: str) -> list[Tree]:
    trees = [Tree(f"gateway@{resolve(ref)}", checkout_env(ref, workdir)) for ref in refs]
    trees.append(Tree("this tree", {}))
    for round_no in range(rounds):
        order = trees[round_no % len(trees) :] + trees[: round_no % len(trees)]  # turn the order each round
        for tree in order:
            _one(tree, upstream, models, duration, workdir)
    return trees


def _one(tree: Tree, upstream: str, models: int, duration: float, workdir: Path) -> None:
    # One client for the run: a new httpx client per call costs tens of ms (its TLS context) and
    # would be counted in every figure.
    with _gateway(tree, upstream, models, workdir) as url, httpx.Client(base_url=url, timeout=60) as client:
        _warm(url, models)
        _scrape(client)  # the first scrape formats every line: what every later one is measured against
        for _ in range(3):
            took, size = _scrape(client)
            tree.scrape_ms.append(took)
            tree.scrape_bytes = size
            tree.stats_ms.append(_stats_poll(client))
        tree.stall_without.append(longest_request_ms(f"{url}/health", duration))
        tree.stall_with.append(longest_request_ms(f"{url}/health", duration, _scrapes_every_second(client, duration)))


def report(trees: list[Tree], models: int, rounds: int, command: str) -> str:
    lines = [
        f"Command: `{command}` ({models} models, each has answered a plain and a streamed request; "
        f"{rounds} interleaved rounds, one fresh worker per tree and round)",
        "",
        "| tree | `GET /metrics` (OpenMetrics), median (max) | size | longest `/health` request, a scrape "
        "every second: median (max) | without scrapes | `GET /api/v1/stats`, median |",
        "|---|---|---|---|---|---|",
    ]
    for t in trees:
        lines.append(
            f"| {t.name} | {statistics.median(t.scrape_ms):.1f} ms ({max(t.scrape_ms):.1f}) | "
            f"{t.scrape_bytes / 1e6:.2f} MB | {statistics.median(t.stall_with):.1f} ms ({max(t.stall_with):.1f}) | "
            f"{statistics.median(t.stall_without):.1f} ms ({max(t.stall_without):.1f}) | "
            f"{statistics.median(t.stats_ms):.1f} ms |"
        )
    return "\n".join(lines) + "\n"
