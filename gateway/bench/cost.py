"""What cost governance adds on the hot path: usage store + budget (in-process and Redis), cache hits.

Four gateways against the same mock upstream, measured in interleaved rounds at concurrency 1
(`interleaved.measure`: median of the rounds, gateway CPU per request, Redis commands per
request counted with MONITOR).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from aimm_gateway.bench import interleaved
from aimm_gateway.bench.interleaved import BODY, REDIS_STATE, ROUNDS, Row


def _variants(workdir: Path) -> dict[str, dict[str, Any]]:
    budget = [{"name": "bench", "limit_usd": "1000000", "period": "monthly", "action": "block"}]
    return {
        "plain": {},
        "store + budget (in-process)": {"store": {"sqlite_path": str(workdir / "a.db")}, "budgets": budget},
        "cache hit": {"cache": {"enabled": True}},
        "store + budget (Redis)": {
            "store": {"sqlite_path": str(workdir / "b.db")},
            "budgets": budget,
            "state": REDIS_STATE,
        },
    }


def measure_cost(openai_url: str, workdir: Path, duration: float) -> list[Row]:
    """Median p50/p99/RPS/CPU at concurrency 1 per variant, and Redis commands per request."""
    body = orjson.dumps({**BODY, "temperature": 0})
    return interleaved.measure(openai_url, workdir, _variants(workdir), duration, body, "cost")


def cost_report(rows: list[Row], micro: dict[str, float]) -> list[str]:
    lines = [
        "",
        f"### Cost governance on the hot path (concurrency 1, median of {ROUNDS} interleaved rounds)",
        "",
        *interleaved.table(rows, "plain"),
    ]
    redis = interleaved.redis_lines(rows)
    if redis:
        lines += [
            "",
            "With Redis (commands clients sent, counted with MONITOR; reserve before the call, settle after it):",
        ]
        lines += redis
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
