"""Calls the gateway makes on a request's behalf, outside its upstream call (the semantic cache's
embedding). The provider bills each one, so each becomes a usage row of its own (same request
id, `api: embeddings`, the route reason naming why) and is counted against every budget whose
scope covers the caller and the model used, the caller's per-key budget included.
"""

from __future__ import annotations

import time

from aimm_gateway.budget.services import CostServices
from aimm_gateway.cache.embedder import Embedding
from aimm_gateway.stages.base import RequestContext
from aimm_gateway.stages.budget import caller_of
from aimm_gateway.state.units import to_units
from aimm_gateway.store.rows import UsageRow

SEMANTIC_CACHE_EMBEDDING = "semantic_cache_embedding"


class SideCalls:
    def __init__(self, cost: CostServices, route: str | None) -> None:
        self._cost = cost
        self._route = route  # the route the client called: route-scoped budgets count its side calls

    async def charge(self, ctx: RequestContext, call: Embedding, reason: str) -> None:
        caller = caller_of(ctx, self._route)
        model = call.model
        if self._cost.usage is not None:
            self._cost.usage.record(
                UsageRow(
                    ts_ms=int(time.time() * 1000),
                    request_id=ctx.request_id,
                    api="embeddings",
                    key_name=caller.key_name,
                    team=caller.team,
                    namespace=caller.namespace,
                    route=self._route,
                    requested=model.name,
                    model=model.name,
                    provider=model.provider,
                    prompt_tokens=call.usage.prompt_tokens,
                    cost_units=to_units(call.cost),
                    baseline_units=to_units(call.cost),  # no cheaper way to embed: no savings claimed
                    latency_ms=call.latency_s * 1000,
                    attempts=1,
                    route_reason=reason,
                )
            )
        if call.cost <= 0:
            return
        budgets = list(ctx.runtime.config.budgets)
        own = await self._cost.key_budget(ctx.identity)
        if own is not None:
            budgets.append(own)
        await self._cost.budgets.charge(budgets, caller, model.name, call.cost)
