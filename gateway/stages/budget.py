"""Budget stage: reserve before the call, settle after it (see budget/enforcer.py).

Before: the budgets this caller and these candidate models touch get a reservation for the
most the request can cost; a block budget refuses (429 insufficient_quota), a downgrade budget
sets `ctx.downgrade_to`, and when only the cheapest candidates fit, `ctx.max_cost_usd` makes the
router's cost filter drop the others. After: every billed attempt settles its reservation.
In the chain only when the config has budgets.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from prometheus_client import Gauge

from aimm_gateway.budget.enforcer import Admission, BudgetEnforcer, Estimates
from aimm_gateway.budget.policy import Caller, in_scope, reservation, touching
from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.config import BudgetConfig, ModelConfig
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.stats import LiveStats


class BudgetStage:
    name: ClassVar[str] = "budget"
    chunk_hook: ChunkHook | None = None

    def __init__(
        self,
        enforcer: BudgetEnforcer,
        stats: LiveStats,
        metrics: GatewayMetrics,
        budgets: list[BudgetConfig],
        route: str | None,
        candidates: list[ModelConfig],
        models: dict[str, ModelConfig],
    ) -> None:
        self._enforcer = enforcer
        self._stats = stats
        self._metrics = metrics
        self._gauges: dict[str, Gauge] = {}
        self._budgets = budgets
        self._route = route
        self._candidates = candidates
        self._models = models

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        identity = ctx.identity
        caller = Caller(ctx.key_name, identity.team if identity is not None else None, self._route)
        names = [m.name for m in self._candidates]
        budgets = touching(self._budgets, caller, names)
        if not budgets:
            return None
        amounts = [reservation(ctx.prompt_tokens, ctx.max_output_tokens, m) for m in self._candidates]
        downgrade = {
            b.downgrade_to: reservation(ctx.prompt_tokens, ctx.max_output_tokens, self._models[b.downgrade_to])
            for b in budgets
            if b.downgrade_to in self._models
        }
        admission = await self._enforcer.admit(budgets, Estimates(max(amounts), min(amounts), downgrade))
        ctx.scratch[self.name] = (admission, caller)
        if admission.max_cost_usd is not None:
            ceiling = admission.max_cost_usd
            ctx.max_cost_usd = ceiling if ctx.max_cost_usd is None else min(ctx.max_cost_usd, ceiling)
        if admission.downgrade_to is not None:
            ctx.downgrade_to = admission.downgrade_to
            ctx.response_headers["x-aimm-budget-action"] = "downgrade"
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        held: tuple[Admission, Caller] | None = ctx.scratch.get(self.name)
        if held is None:
            return
        admission, caller = held
        charges = [(a.model, a.cost) for a in outcome.attempts if a.cost]  # every billed attempt
        for hold in admission.holds:  # the per-pod figures /api/v1/stats and budget_used_ratio show
            budget = hold.budget
            spent = sum((c for m, c in charges if in_scope(budget, caller, m)), Decimal(0))
            if spent:
                total = self._stats.add_budget_spend(budget.name, spent)
                gauge = self._gauges.get(budget.name)
                if gauge is None:  # labels() is too slow for every request (metrics.py)
                    gauge = self._gauges[budget.name] = self._metrics.budget_used.labels(budget.name)
                gauge.set(float(total / budget.limit_usd))
        await self._enforcer.settle(admission, charges, caller)


def _candidates(rt: Runtime, name: str) -> list[ModelConfig]:
    route = rt.routes.get(name)
    names = [t.model for t in route.targets] + route.fallbacks if route is not None else [name]
    return [rt.models[n] for n in dict.fromkeys(names) if n in rt.models]


def build(rt: Runtime, name: str, deps: StageDeps) -> BudgetStage | None:
    candidates = _candidates(rt, name)
    if not rt.config.budgets or not candidates or deps.cost is None:
        return None
    route = name if name in rt.routes else None
    return BudgetStage(deps.cost.budgets, deps.stats, deps.metrics, rt.config.budgets, route, candidates, rt.models)
