"""Per-pod budget spend counting: adds each answered attempt's cost to the budgets covering it.

Counting only, no enforcement: the cost work replaces this stage with reserve-then-settle
against the shared state layer. In the chain only when the config has budgets.
"""

from __future__ import annotations

from typing import ClassVar

from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.stats import LiveStats


class BudgetSpend:
    name: ClassVar[str] = "budget_spend"
    chunk_hook: ChunkHook | None = None

    def __init__(self, stats: LiveStats, metrics: GatewayMetrics) -> None:
        self._stats = stats
        self._metrics = metrics

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        # Every answered attempt was billed: a refused answer or a hedge race's other winner too.
        for attempt in outcome.attempts:
            if attempt.outcome != "ok":
                continue
            for budget in ctx.runtime.budgets_for(attempt.model, ctx.key_name):
                spent = self._stats.add_budget_spend(budget.name, attempt.cost)
                self._metrics.budget_used.labels(budget.name).set(float(spent / budget.limit_usd))


def build(rt: Runtime, name: str, deps: StageDeps) -> BudgetSpend | None:
    return BudgetSpend(deps.stats, deps.metrics) if rt.config.budgets else None
