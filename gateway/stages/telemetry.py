"""The telemetry stage: client-request metrics, the request trace and the access log.

First in every chain, so its `after` runs last and sees every outcome, including refusals by
later stages (rate limits, budgets, guards). Per-attempt series stay in the attempt loop
(attempts/ledger.py); per-attempt spans are started there through the `RequestTrace` this stage
leaves in `ctx.scratch` (absent when tracing is off: the loop pays one dict lookup per attempt).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.metrics import OTHER, GatewayMetrics
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.telemetry import INCOMING_KEY, TRACE_KEY

if TYPE_CHECKING:
    from aimm_gateway.runtime import Runtime
    from aimm_gateway.telemetry.access_log import AccessLog
    from aimm_gateway.telemetry.tracing import RequestTrace, Tracing


class TelemetryStage:
    name: ClassVar[str] = "telemetry"

    def __init__(
        self, metrics: GatewayMetrics, label: str, tracing: Tracing | None, access_log: AccessLog | None
    ) -> None:
        self._metrics = metrics
        self._label = label  # the route/model name if configured, else `other`: bounded
        self._tracing = tracing
        self._access_log = access_log
        # Streams' finish reasons reach the trace through the chunks; without tracing, no hook.
        self.chunk_hook: ChunkHook | None = _note_finish if tracing is not None else None

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        self._metrics.in_flight.inc()
        if self._tracing is not None:
            ctx.scratch[TRACE_KEY] = self._tracing.start_request(
                ctx.api, ctx.requested or OTHER, ctx.stream, ctx.request_id, ctx.scratch.get(INCOMING_KEY)
            )
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        self._metrics.in_flight.dec()
        latency = time.perf_counter() - ctx.started
        series = self._metrics.request_series(ctx.api, self._label, outcome.status)
        series.requests.inc()
        trace: RequestTrace | None = ctx.scratch.get(TRACE_KEY)
        trace_id = None
        if trace is not None:
            trace_id = trace.trace_id
            series.duration.observe(latency, {"trace_id": trace_id})  # an exemplar, in OpenMetrics scrapes
            trace.finish(outcome, error_type(outcome))
        else:
            series.duration.observe(latency)
        if self._access_log is not None:
            self._access_log.write(ctx, outcome, latency, trace_id)


def _note_finish(ctx: RequestContext, chunk: ChatChunk) -> ChatChunk:
    trace: RequestTrace | None = ctx.scratch.get(TRACE_KEY)
    if trace is not None:
        trace.response_model = trace.response_model or chunk.get("model")
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                trace.finish_reasons.append(str(choice["finish_reason"]))
    return chunk


def build(rt: Runtime, name: str, deps: StageDeps) -> TelemetryStage:
    """Every route has it: metrics always, the access log and traces as the config says."""
    settings = rt.config.observability
    tracing = deps.telemetry.tracing(settings)
    return TelemetryStage(deps.metrics, label_for(rt, name), tracing, deps.telemetry.access_log(settings))


def label_for(rt: Runtime, name: str) -> str:
    """The metric label for the model or route a client asked for: bounded by the config."""
    return name if name in rt.routes or name in rt.models else OTHER


def error_type(outcome: Outcome) -> str | None:
    """`error.type` of a failed request: the error's code or type; None when it succeeded."""
    if outcome.error is not None:
        return outcome.error.code or outcome.error.type
    if not outcome.ok:
        return "cancelled" if outcome.status == 499 else "internal"
    return None
