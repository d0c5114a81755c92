"""Budget status for `GET /api/v1/budgets` (the operator writes it into CostBudget status).

Spend comes from the usage store when there is one (settled, durable, the same whichever replica
answers, and it survives restarts); else from the state layer's counter. The projection uses
the store's daily history (weekly seasonality, analytics/forecast.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aimm_gateway.analytics.forecast import DailySpend, project_period
from aimm_gateway.budget.enforcer import rfc3339
from aimm_gateway.budget.periods import window
from aimm_gateway.budget.policy import percent
from aimm_gateway.budget.services import CostServices
from aimm_gateway.config import BudgetConfig
from aimm_gateway.state.base import StateUnavailable

CENT4 = Decimal("0.0001")


def budget_state(pct: Decimal, thresholds: list[int]) -> str:
    if pct >= 100:
        return "Exceeded"
    warn = [t for t in thresholds if t < 100]
    return "Warning" if warn and pct >= min(warn) else "OK"


async def _spent(services: CostServices, budget: BudgetConfig, now: datetime) -> tuple[Decimal, str]:
    win = window(budget, now)
    if services.store_ready:
        return await services.settled(budget, win.start, now), "store"
    try:
        total = await services.state.spent(win.key)
        for key in win.prior_keys:
            total += await services.state.spent(key)
        return total, "state"
    except StateUnavailable:
        return Decimal(0), "unavailable"


async def _projected(services: CostServices, budget: BudgetConfig, spent: Decimal, now: datetime) -> Decimal:
    win = window(budget, now)
    if budget.period == "rolling" or not services.store_ready:
        elapsed = (now - win.start).total_seconds()
        share = max(elapsed / win.length_s, 0.01) if win.length_s else 1.0
        return (spent / Decimal(str(min(share, 1.0)))).quantize(CENT4, ROUND_HALF_UP)
    today = now.astimezone(UTC).date()
    history = [DailySpend(d, float(v)) for d, v in await services.daily_history(budget, today)]
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC)
    share_left = 1 - (now - midnight).total_seconds() / 86_400
    last_day = (win.end - timedelta(microseconds=1)).astimezone(UTC).date()
    return project_period(history, spent, today, share_left, last_day)


async def budget_status(services: CostServices, budgets: list[BudgetConfig], now: datetime) -> list[dict[str, Any]]:
    out = []
    for budget in budgets:
        win = window(budget, now)
        spent, source = await _spent(services, budget, now)
        pct = percent(spent, budget.limit_usd)
        out.append(
            {
                "name": budget.name,
                "period": budget.period,
                "timeZone": budget.timezone,
                "limitUsd": str(budget.limit_usd),
                "costThisPeriod": str(spent.quantize(CENT4, ROUND_HALF_UP)),
                "percentUsed": str(pct.quantize(Decimal("0.1"), ROUND_HALF_UP)),
                "projectedPeriodCost": str(await _projected(services, budget, spent, now)),
                "periodStart": rfc3339(win.start),
                "periodEnds": rfc3339(win.end),
                "state": budget_state(pct, budget.thresholds),
                "action": budget.action,
                "lastAction": await services.budgets.shared_last_action(budget),
                "source": source,
            }
        )
    return out


def threshold_events(services: CostServices) -> list[dict[str, Any]]:
    """Crossings this replica announced (each fires on one replica only): the operator turns
    each (budget, periodStart, threshold) into one Kubernetes Event on the CostBudget."""
    return [
        {
            "budget": e.budget,
            "threshold": e.threshold,
            "percentUsed": e.percent_used,
            "spentUsd": e.spent_usd,
            "periodStart": e.period_start,
            "periodEnds": e.period_ends,
            "at": e.at,
        }
        for e in services.alerts.recent
    ]
