"""Micro-benchmark of the telemetry stage: µs of CPU per request, per setting.

What `make bench` reports next to routing and translation: the request-level telemetry a
request pays (client-request series, in-flight gauge, access-log line, spans) with tracing off
and on. Tracing on creates and ends the request span and one attempt span and builds the
`traceparent`; its export (batched, on another thread) is not on the request path and not
counted. Best of `repeat` runs of CPU time, like routing/bench.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal

from aimm_gateway.canonical import Usage
from aimm_gateway.config import GatewayConfig
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.runtime import build_runtime
from aimm_gateway.stages.base import AttemptRecord, Outcome, RequestContext
from aimm_gateway.stages.telemetry import TelemetryStage, label_for
from aimm_gateway.telemetry import TRACE_KEY
from aimm_gateway.telemetry.access_log import AccessLog
from aimm_gateway.telemetry.tracing import RequestTrace, Tracing


async def _per_request_us(stage: TelemetryStage, n: int, repeat: int) -> float:
    rt = build_runtime(GatewayConfig.model_validate({"models": [{"name": "m", "provider": "mock"}]}), _POOLS)
    assert label_for(rt, "m") == "m"
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for i in range(n):
            ctx = RequestContext(f"req-{i}", rt, requested="m", started=time.perf_counter())
            await stage.before(ctx)
            outcome = Outcome(ok=True, model="m", provider="mock", usage=Usage(30, 6), cost=Decimal("0.00004"))
            trace: RequestTrace | None = ctx.scratch.get(TRACE_KEY)
            if trace is not None:  # what the attempt loop does for each attempt when tracing is on
                record = AttemptRecord("m", "mock", "ok", 200, 0.001)
                trace.attempt(record, "m")
                outcome.attempts.append(record)
            await stage.after(ctx, outcome)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


_POOLS = UpstreamPools("httpx", 1)


def bench_telemetry(n: int = 3000, repeat: int = 5) -> dict[str, float]:
    from opentelemetry.sdk.trace import TracerProvider

    metrics = GatewayMetrics()
    with open(os.devnull, "w") as sink:
        variants = {
            "metrics only (access log off, tracing off)": TelemetryStage(metrics, "m", None, None),
            "metrics + access log (tracing off: the default)": TelemetryStage(metrics, "m", None, AccessLog(1.0, sink)),
            "metrics + access log + tracing on (request + 1 attempt span)": TelemetryStage(
                metrics, "m", Tracing(TracerProvider()), AccessLog(1.0, sink)
            ),
        }
        return {name: asyncio.run(_per_request_us(stage, n, repeat)) for name, stage in variants.items()}


if __name__ == "__main__":
    for name, us in bench_telemetry().items():
        print(f"{us:7.1f} µs  {name}")
