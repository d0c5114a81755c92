"""What cost governance adds on the hot path: usage store + budget (in-process and Redis), cache hits.

Four gateways against the same mock upstream, measured in interleaved rounds (A, B, C, D, A, ...)
at concurrency 1, so a burst of machine noise hits every variant alike; the median of the rounds
is reported. With Redis, the Lua calls per request are counted from Redis's own command stats.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import yaml

from aimm_gateway.bench.loadgen import WrkResult, wrk
from aimm_gateway.bench.procs import GATEWAY_CPU, aimm, cpu_seconds, free_port, pinned, process

KEY = "sk-bench"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
BODY = {"model": "m", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 64}
ROUNDS = 3


@dataclass
class CostRow:
    name: str
    p50_ms: float
    p99_ms: float
    rps: float
    cpu_us: float  # gateway CPU per request


def _variants(redis_url: str | None, workdir: Path) -> dict[str, dict[str, Any]]:
    budget = [{"name": "bench", "limit_usd": "1000000", "period": "monthly", "action": "block"}]
    out: dict[str, dict[str, Any]] = {
        "plain": {},
        "store + budget (in-process)": {"store": {"sqlite_path": str(workdir / "a.db")}, "budgets": budget},
        "cache hit": {"cache": {"enabled": True}},
    }
    if redis_url is not None:
        redis = {"redis": {"url": {"env": "AIMM_BENCH_REDIS"}, "timeout_ms": 200}}
        out["store + budget (Redis)"] = {
            "store": {"sqlite_path": str(workdir / "b.db")},
            "budgets": budget,
            "state": redis,
        }
    return out


def _config(openai_url: str, port: int, extra: dict[str, Any]) -> dict[str, Any]:
    model = {"provider": "openai_compatible", "base_url": f"{openai_url}/v1"}
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "auth": {"api_keys": [{"name": "bench", "key": {"env": "AIMM_BENCH_KEY"}}]},
        "models": [{"name": "m", **model, "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}}],
        **extra,
    }


@contextmanager
def _redis(workdir: Path) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)]
    proc = subprocess.Popen(pinned(GATEWAY_CPU, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _script_calls(redis_url: str) -> int:
    """EVAL/EVALSHA calls so far, from Redis's own INFO commandstats."""
    import redis  # the sync client: the bench is not on an event loop

    stats = redis.Redis.from_url(redis_url).info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


def measure_cost(openai_url: str, workdir: Path, duration: float) -> tuple[list[CostRow], float | None]:
    """Median p50/p99/RPS at concurrency 1 per variant, and Redis script calls per request."""
    body = orjson.dumps({**BODY, "temperature": 0})
    with ExitStack() as stack:
        redis_url = stack.enter_context(_redis(workdir))
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for i, (name, extra) in enumerate(_variants(redis_url, workdir).items()):
            port = free_port()
            path = workdir / f"cost{i}.yaml"
            path.write_text(yaml.safe_dump(_config(openai_url, port, extra)))
            env = {"AIMM_BENCH_KEY": KEY, "AIMM_BENCH_REDIS": redis_url or ""}
            cmd = pinned(GATEWAY_CPU, aimm("gateway", "serve", "--config", str(path)))
            proc = stack.enter_context(
                process(cmd, f"http://127.0.0.1:{port}/health", env=env, log=workdir / f"cost{i}.log")
            )
            pids[name] = proc.pid
            urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
        samples: dict[str, list[tuple[WrkResult, float]]] = {name: [] for name in urls}
        for url in urls.values():
            wrk(url, body, HEADERS, 1, 1.0)  # warm-up (and the cache's one miss)
        calls_per_request = None
        for _ in range(ROUNDS):
            for name, url in urls.items():
                before = _script_calls(redis_url) if redis_url and "Redis" in name else 0
                cpu = cpu_seconds(pids[name])
                result = wrk(url, body, HEADERS, 1, duration)
                cpu = cpu_seconds(pids[name]) - cpu
                if redis_url and "Redis" in name and result.requests:
                    calls_per_request = (_script_calls(redis_url) - before) / result.requests
                samples[name].append((result, cpu * 1e6 / max(1, result.requests)))
    rows = [
        CostRow(
            name,
            statistics.median(r.p50_ms for r, _ in rs),
            statistics.median(r.p99_ms for r, _ in rs),
            statistics.median(r.rps for r, _ in rs),
            statistics.median(us for _, us in rs),
        )
        for name, rs in samples.items()
    ]
    return rows, calls_per_request


def cost_report(rows: list[CostRow], calls_per_request: float | None, micro: dict[str, float]) -> list[str]:
    plain = next(r for r in rows if r.name == "plain")
    lines = [
        "",
        f"### Cost governance on the hot path (concurrency 1, median of {ROUNDS} interleaved rounds)",
        "",
        "| variant | p50 | added p50 vs plain | p99 | RPS | gateway CPU per request | added CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        added = r.p50_ms - plain.p50_ms
        lines.append(
            f"| {r.name} | {r.p50_ms:.3f} ms | **{added:+.3f} ms** | {r.p99_ms:.3f} ms | {r.rps:,.0f} | "
            f"{r.cpu_us:.0f} µs | **{r.cpu_us - plain.cpu_us:+.0f} µs** |"
        )
    if calls_per_request is not None:
        lines.append(
            f"\nWith Redis: {calls_per_request:.2f} Lua calls per request, from Redis's INFO commandstats "
            "(reserve before the call, settle after it: one round trip each)."
        )
    lines.append(
        "\nOn the request path itself (in-process, CPU time per request, stage before + after, no HTTP): "
        + ", ".join(f"{k} **{v:.0f} µs**" for k, v in micro.items())
        + " (SQLite store + in-process budget; the batch writes run off the path, on the writer thread)."
    )
    return lines


async def _stage_us(n: int, workdir: Path) -> dict[str, float]:
    """In-process: the usage + budget stages' before/after per request, in µs (no HTTP, no upstream)."""
    from aimm_gateway.budget.services import CostServices
    from aimm_gateway.canonical import Usage, validate_chat
    from aimm_gateway.config import parse_config
    from aimm_gateway.metrics import GatewayMetrics
    from aimm_gateway.providers.http import UpstreamPools
    from aimm_gateway.runtime import build_runtime
    from aimm_gateway.stages import budget, usage
    from aimm_gateway.stages.base import AttemptRecord, Outcome, RequestContext, StageDeps
    from aimm_gateway.stats import LiveStats

    config = parse_config(
        {
            "models": [
                {"name": "m", "provider": "mock", "pricing": {"input_per_1k": "0.001", "output_per_1k": "0.002"}}
            ],
            "budgets": [{"name": "b", "limit_usd": "1000000", "action": "block"}],
            "store": {"sqlite_path": str(workdir / "micro.db"), "queue_max": n + 1},
        }
    )
    metrics = GatewayMetrics()
    cost = CostServices(config, metrics)
    deps = StageDeps(metrics, LiveStats(), cost)
    rt = build_runtime(config, UpstreamPools())
    stages = [s for s in (usage.build(rt, "m", deps), budget.build(rt, "m", deps)) if s is not None]
    req = validate_chat({"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64})
    out: dict[str, float] = {}
    for label, chain in (("none", []), ("usage", stages[:1]), ("usage + budget", stages)):
        started = time.process_time()  # CPU time: a shared machine's waits are not counted
        for i in range(n):
            ctx = RequestContext(str(i), rt, requested="m", body={}, request=req, prompt_tokens=8, max_output_tokens=64)
            for stage in chain:
                await stage.before(ctx)
            done = Outcome(ok=True, model="m", provider="mock", usage=Usage(8, 20))
            done.attempts.append(AttemptRecord("m", "mock", "ok", 200, 0.001, cost=Decimal("0.00005")))
            for stage in reversed(chain):
                await stage.after(ctx, done)
        out[label] = (time.process_time() - started) / n * 1e6
    await cost.state.close()
    base = out.pop("none")  # building contexts and outcomes: not the stages' cost
    return {k: round(v - base, 1) for k, v in out.items()}


def stage_micro(n: int = 20_000) -> dict[str, float]:
    import asyncio
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_stage_us(n, Path(tmp)))
