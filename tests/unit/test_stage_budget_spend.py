"""The per-pod budget spend counter as a stage: every billed attempt counts, scoped by model and key."""

from __future__ import annotations

from decimal import Decimal

from aimm_gateway.stages import budget_spend
from aimm_gateway.stages.base import AttemptRecord, Outcome
from tests.unit.stage_fixtures import Deps, context, mock_model, runtime

BUDGETS = [
    {"name": "all", "limit_usd": "10", "period": "monthly"},
    {"name": "a-only", "limit_usd": "1", "period": "monthly", "models": ["a"]},
    {"name": "team-b", "limit_usd": "1", "period": "monthly", "api_keys": ["team-b"]},
]


def outcome(*attempts: AttemptRecord) -> Outcome:
    return Outcome(ok=True, attempts=list(attempts))


async def test_adds_each_answered_attempt_to_the_budgets_covering_it() -> None:
    deps = Deps()
    rt = runtime([mock_model("a"), mock_model("b")], budgets=BUDGETS)
    stage = budget_spend.build(rt, "a", deps.stage_deps)
    assert stage is not None
    done = outcome(
        AttemptRecord("a", "mock", "content_filter", 400),
        AttemptRecord("a", "mock", "ok", 200, cost=Decimal("0.25")),  # a refused answer is billed
        AttemptRecord("b", "mock", "timeout", 504, cost=Decimal("9")),  # never billed: not ok
        AttemptRecord("b", "mock", "ok", 200, cost=Decimal("0.5"), hedge=True),
    )
    await stage.after(context(rt, "a", key="team-a"), done)
    assert deps.stats.budget_spend() == {"all": Decimal("0.75"), "a-only": Decimal("0.25")}
    assert deps.metrics.budget_used.labels("a-only")._value.get() == 0.25


async def test_key_scoped_budgets_follow_the_caller() -> None:
    deps = Deps()
    rt = runtime([mock_model("a")], budgets=BUDGETS)
    stage = budget_spend.build(rt, "a", deps.stage_deps)
    assert stage is not None
    await stage.after(context(rt, "a", key="team-b"), outcome(AttemptRecord("a", "mock", "ok", 200, cost=Decimal(1))))
    assert deps.stats.budget_spend()["team-b"] == Decimal(1)
    assert await stage.before(context(rt, "a")) is None


def test_not_built_without_budgets() -> None:
    assert budget_spend.build(runtime([mock_model("a")]), "a", Deps().stage_deps) is None
