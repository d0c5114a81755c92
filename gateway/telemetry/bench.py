"""Micro-benchmark of request telemetry: µs of CPU per request through the real pipeline.

What `make bench` reports next to routing and translation: one plain chat request at a time
(concurrency 1, so CPU per request is the latency it adds) through `ChatPipeline.complete` over
an in-process mock model, with the stage chain as the gateway builds it, against the same
pipeline without the telemetry stage. Variants: metrics only, metrics + access log (the
default, tracing off), and tracing on (request span + one attempt span + `traceparent`; span
export is batched on another thread and not counted). Best of interleaved rounds of CPU time,
like routing/bench.py: on a shared machine the minimum is the cost, the rest other processes.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Mapping
from typing import TextIO

from aimm_gateway.canonical import validate_chat
from aimm_gateway.config import ObservabilitySettings, parse_config
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.pipeline import ChatPipeline
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.routing import RouterState, SystemClock
from aimm_gateway.runtime import Runtime, build_runtime
from aimm_gateway.stages.assembly import StageAssembly
from aimm_gateway.stages.base import RequestContext, StageDeps, StageFactory
from aimm_gateway.stages.telemetry import build as telemetry_stage
from aimm_gateway.stats import LiveStats
from aimm_gateway.telemetry.parts import Telemetry

_BODY = {"model": "m", "messages": [{"role": "user", "content": "Say hello to the benchmark"}], "max_tokens": 16}
BASELINE = "pipeline without the telemetry stage"
VARIANTS = {
    "metrics only (access log off, tracing off)": {"access_log": {"enabled": False}},
    "metrics + access log, tracing off (the default)": {},
    "metrics + access log + tracing on": {"tracing": {"enabled": True}},
}


def _runtime(observability: Mapping[str, object]) -> Runtime:
    doc = {"models": [{"name": "m", "provider": "mock"}], "observability": observability}
    return build_runtime(parse_config(doc), UpstreamPools())


def _pipeline(order: tuple[StageFactory, ...], sink: TextIO) -> ChatPipeline:
    from opentelemetry.sdk.trace import TracerProvider  # spans made and dropped: no exporter

    metrics, stats = GatewayMetrics(), LiveStats()
    deps = StageDeps(metrics, stats, telemetry=Telemetry(sink, TracerProvider()))
    return ChatPipeline(RouterState(SystemClock(), random.Random(1)), metrics, stats, stages=StageAssembly(deps, order))


async def _cpu_us(pipeline: ChatPipeline, rt: Runtime, n: int) -> float:
    req = validate_chat(_BODY)
    start = time.process_time()
    for i in range(n):
        ctx = RequestContext(f"r{i}", rt, requested="m", body=_BODY, request=req, started=time.perf_counter())
        outcome = await pipeline.complete(ctx)
        assert outcome.ok
    return (time.process_time() - start) / n * 1e6


def bench_telemetry(n: int = 2000, rounds: int = 5) -> dict[str, float]:
    """µs of CPU per request for each variant, and the baseline without the stage."""
    with open(os.devnull, "w") as sink:
        cases = {BASELINE: (_pipeline((), sink), _runtime({}))}
        for name, observability in VARIANTS.items():
            cases[name] = (_pipeline((telemetry_stage,), sink), _runtime(observability))
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(rounds):  # interleaved, so drift on the host hits every variant alike
            for name, (pipeline, rt) in cases.items():
                best[name] = min(best[name], asyncio.run(_cpu_us(pipeline, rt, n)))
    assert ObservabilitySettings().tracing.enabled is False  # the figure labelled "default" is the default
    return best


if __name__ == "__main__":
    figures = bench_telemetry()
    base = figures[BASELINE]
    for name, us in figures.items():
        added = "" if name == BASELINE else f"  (+{us - base:.1f} µs)"
        print(f"{us:7.1f} µs  {name}{added}")
