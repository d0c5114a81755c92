"""Usage stage: one store row per request (and per attempt), queued off the request path.

First in the order, so its `after` runs last and sees every request, refused ones included.
`baseline_units` prices the same usage on the route's most expensive target: the savings the
analytics report (routing and caching) are measured against it. In the chain only with a store.
"""

from __future__ import annotations

import time
from typing import ClassVar

from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.config import Pricing
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import GatewayError
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.stages.cache import cached_model
from aimm_gateway.state.units import to_units
from aimm_gateway.store.rows import AttemptRow, UsageRow
from aimm_gateway.store.service import UsageService


class UsageStage:
    name: ClassVar[str] = "usage"
    chunk_hook: ChunkHook | None = None

    def __init__(self, usage: UsageService, route: str | None, baseline: Pricing | None) -> None:
        self._usage = usage
        self._route = route
        self._baseline = baseline

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        ctx.scratch[self.name] = time.time()
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        arrived: float = ctx.scratch.get(self.name, time.time())
        ts_ms = int(arrived * 1000)
        hit = cached_model(ctx) if outcome.cache_hit else None
        model = hit.model if hit is not None else outcome.model
        baseline = self._baseline or (ctx.runtime.models[model].pricing if model in ctx.runtime.models else None)
        error = outcome.error
        self._usage.record(
            UsageRow(
                ts_ms=ts_ms,
                request_id=ctx.request_id,
                api=ctx.api,
                key_name=ctx.key_name,
                team=ctx.identity.team if ctx.identity is not None else None,
                namespace=ctx.runtime.namespace,
                route=self._route,
                requested=ctx.requested,
                model=model,
                provider=hit.provider if hit is not None else outcome.provider,
                status=outcome.status if not outcome.ok else 200,
                error_kind=(error.code or error.type) if isinstance(error, GatewayError) else None,
                prompt_tokens=outcome.usage.prompt_tokens,
                completion_tokens=outcome.usage.completion_tokens,
                cached_tokens=outcome.usage.cached_tokens,
                reasoning_tokens=outcome.usage.reasoning_tokens,
                cost_units=to_units(outcome.spent),
                baseline_units=to_units(request_cost(outcome.usage, baseline)) if baseline is not None else 0,
                latency_ms=outcome.latency_s * 1000,
                ttft_ms=outcome.ttft_s * 1000 if outcome.ttft_s is not None else None,
                cache_hit=outcome.cache_hit,
                attempts=len(outcome.attempts),
                route_reason=outcome.route_reason,
                attempt_rows=tuple(
                    AttemptRow(
                        ts_ms, ctx.request_id, i, a.model, a.provider, a.outcome, a.status, a.latency_s * 1000, a.hedge
                    )
                    for i, a in enumerate(outcome.attempts)
                ),
            )
        )


def _priciest(rt: Runtime, name: str) -> Pricing | None:
    route = rt.routes.get(name)
    if route is None:
        return None
    prices = [rt.models[t.model].pricing for t in route.targets if t.model in rt.models]
    return max(prices, key=lambda p: (p.output_per_1k, p.input_per_1k), default=None)


def build(rt: Runtime, name: str, deps: StageDeps) -> UsageStage | None:
    usage = deps.cost.usage if deps.cost is not None else None
    if usage is None:
        return None
    return UsageStage(usage, name if name in rt.routes else None, _priciest(rt, name))
