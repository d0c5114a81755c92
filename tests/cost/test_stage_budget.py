"""The budget stage in the pipeline: reserve before, settle every billed attempt after, scopes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aimm_gateway.budget.enforcer import BudgetExhausted
from aimm_gateway.budget.periods import window
from aimm_gateway.stages import budget
from aimm_gateway.stages.base import AttemptRecord, Outcome
from tests.unit.stage_fixtures import Deps, context, mock_model, runtime

BUDGETS = [
    {"name": "all", "limit_usd": "10", "period": "monthly"},
    {"name": "a-only", "limit_usd": "1", "period": "monthly", "models": ["a"]},
    {"name": "team-b", "limit_usd": "1", "period": "monthly", "api_keys": ["team-b"]},
]


async def test_settles_each_billed_attempt_to_the_budgets_covering_it() -> None:
    deps = Deps()
    rt = runtime(
        [mock_model("a"), mock_model("b")],
        [{"name": "r", "targets": [{"model": "a"}, {"model": "b"}]}],
        budgets=BUDGETS,
    )
    stage = budget.build(rt, "r", deps.stage_deps)
    assert stage is not None
    ctx = context(rt, "r", key="team-a", max_tokens=10)
    assert await stage.before(ctx) is None
    done = Outcome(
        ok=True,
        attempts=[
            AttemptRecord("a", "mock", "content_filter", 200, cost=Decimal("0.25")),  # refused, still billed
            AttemptRecord("b", "mock", "ok", 200, cost=Decimal("0.5"), hedge=True),
        ],
    )
    await stage.after(ctx, done)
    state = deps.cost.state
    now = deps.cost.budgets.clock()
    assert await state.spent(window(rt.config.budgets[0], now).key) == Decimal("0.75")
    assert await state.spent(window(rt.config.budgets[1], now).key) == Decimal("0.25")  # only model a
    assert deps.stats.budget_spend() == {"all": Decimal("0.75"), "a-only": Decimal("0.25")}
    assert deps.metrics.budget_used.labels("a-only").value == 0.25


async def test_block_refuses_before_any_upstream_call() -> None:
    deps = Deps()
    rt = runtime([mock_model("a", price="1")], budgets=[{"name": "tiny", "limit_usd": "0.01", "action": "block"}])
    pipeline = deps.pipeline()
    with pytest.raises(BudgetExhausted):
        await pipeline.complete(context(rt, "a", max_tokens=100))  # reserves > $0.1
    assert deps.stats.per_model().get("a", {}).get("requests_total", 0) == 0


async def test_failed_request_releases_its_reservation() -> None:
    deps = Deps()
    rt = runtime([mock_model("a")], budgets=[{"name": "cap", "limit_usd": "1", "action": "block"}])
    stage = budget.build(rt, "a", deps.stage_deps)
    assert stage is not None
    ctx = context(rt, "a", max_tokens=100)
    await stage.before(ctx)
    key = window(rt.config.budgets[0], deps.cost.budgets.clock()).key
    assert await deps.cost.state.spent(key) > 0
    await stage.after(ctx, Outcome(ok=False, status=502))
    assert await deps.cost.state.spent(key) == 0


def test_not_built_without_budgets_or_authentication() -> None:
    no_auth = runtime([mock_model("a")], auth={"enabled": False})
    assert budget.build(no_auth, "a", Deps().stage_deps) is None


async def test_without_budgets_a_key_without_budget_reserves_nothing() -> None:
    deps = Deps()
    rt = runtime([mock_model("a")])  # auth on: a key created over the API may carry a budget
    stage = budget.build(rt, "a", deps.stage_deps)
    assert stage is not None
    ctx = context(rt, "a", max_tokens=100)
    assert await stage.before(ctx) is None
    assert "budget" not in ctx.scratch
