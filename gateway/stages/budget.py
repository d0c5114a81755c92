"""Budget stage: reserve before the call, settle after it (see budget/enforcer.py).

Before: the budgets this caller and these candidate models touch get a reservation for the
most the request can cost; a block budget refuses (429 insufficient_quota), a downgrade budget
sets `ctx.downgrade_to`, and when only the cheapest candidates fit, `ctx.max_cost_usd` makes the
router's cost filter drop the others. After: every billed attempt settles its reservation.
A key with `budget_usd` adds its own block budget (budget/key_budgets.py).
In the chain with budgets or with auth on; without budgets or a key budget `before` returns at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import ClassVar

from aimm_gateway.budget.enforcer import Admission, BudgetEnforcer, Estimates
from aimm_gateway.budget.key_budgets import PREFIX as KEY_BUDGET
from aimm_gateway.budget.policy import Caller, in_scope, reservation, touching
from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.config import BudgetConfig, ModelConfig
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.metrics_families import GaugeChild
from aimm_gateway.runtime import Runtime
from aimm_gateway.security.identity import Identity
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.state.memory import MemoryState
from aimm_gateway.stats import LiveStats

KeyBudgetOf = Callable[[Identity | None], Awaitable[BudgetConfig | None]]


def caller_of(ctx: RequestContext, route: str | None) -> Caller:
    """Who a request's spend counts for: key, team, the route called, the gateway's namespace."""
    identity = ctx.identity
    team = identity.team if identity is not None else None
    return Caller(ctx.key_name, team, route, ctx.runtime.namespace)


class BudgetStage:
    name: ClassVar[str] = "budget"
    chunk_hook: ChunkHook | None = None
    after_needs_scratch: ClassVar[bool] = True  # nothing to settle unless `before` reserved

    def __init__(
        self,
        enforcer: BudgetEnforcer,
        key_budget: KeyBudgetOf,
        stats: LiveStats,
        metrics: GatewayMetrics,
        budgets: list[BudgetConfig],
        route: str | None,
        candidates: list[ModelConfig],
        models: dict[str, ModelConfig],
    ) -> None:
        self._enforcer = enforcer
        # In-process state settles without waiting, in the same task right after the answer is
        # handed to the transport: the caller's next request sees the spend. Over Redis the settle
        # is awaited before the answer is sent, so the same holds across the fleet.
        self.after_before_answer = not isinstance(enforcer.state, MemoryState)
        self._key_budget = key_budget
        self._stats = stats
        self._metrics = metrics
        self._gauges: dict[str, GaugeChild] = {}
        self._budgets = budgets
        self._route = route
        self._candidates = candidates
        self._models = models

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        identity = ctx.identity
        if not self._budgets and (identity is None or identity.budget_usd is None):
            return None  # the common case without budgets: nothing to reserve
        caller = caller_of(ctx, self._route)
        names = [m.name for m in self._candidates]
        budgets = touching(self._budgets, caller, names)
        own = await self._key_budget(identity)
        if own is not None:
            budgets.append(own)
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
            if budget.name.startswith(KEY_BUDGET):
                continue  # per-key budgets: no per-budget series (one per key would be unbounded)
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
    """With budgets, or with auth on: any key (config, or created over the API) may carry a budget."""
    candidates = _candidates(rt, name)
    if not candidates or deps.cost is None or not (rt.config.budgets or rt.config.auth.enabled):
        return None
    route = name if name in rt.routes else None
    cost = deps.cost
    return BudgetStage(
        cost.budgets, cost.key_budget, deps.stats, deps.metrics, rt.config.budgets, route, candidates, rt.models
    )
