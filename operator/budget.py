"""CostBudget status from the gateways' own budget figures (`GET /api/v1/budgets`), pure.

The gateways own the arithmetic (periods in a time zone, spend from the usage store or the shared
state, the projection): the operator only copies their figures into status, merges them when a
budget is in several gateways' configs, and turns their threshold crossings into Events, once each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aimm_operator.objects import Budget
from aimm_operator.status import EventSpec

BUDGETS_PATH = "/api/v1/budgets"
_STATE_RANK = {"OK": 0, "Warning": 1, "Exceeded": 2}


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class LastAction(_Lenient):
    action: str
    at: str


class BudgetFigure(_Lenient):
    """One budget in a gateway's `/api/v1/budgets` (fleet-wide when the gateway has spec.redis)."""

    name: str
    cost: Decimal = Field(alias="costThisPeriod")
    percent: Decimal = Field(alias="percentUsed")
    projected: Decimal = Field(alias="projectedPeriodCost")
    period_start: str = Field(alias="periodStart")
    period_ends: str = Field(alias="periodEnds")
    state: Literal["OK", "Warning", "Exceeded"] = "OK"
    last_action: LastAction | None = Field(None, alias="lastAction")
    source: str = "unknown"


class ThresholdCrossing(_Lenient):
    """A threshold crossing announced by one replica (each crossing fires on one replica only)."""

    budget: str
    threshold: int
    percent_used: str = Field(alias="percentUsed")
    spent_usd: str = Field(alias="spentUsd")
    period_start: str = Field(alias="periodStart")


class PodBudgets(_Lenient):
    budgets: list[BudgetFigure] = Field(default_factory=list)
    threshold_events: list[ThresholdCrossing] = Field(default_factory=list, alias="thresholdEvents")


def merge_figures(figures: Sequence[BudgetFigure]) -> BudgetFigure:
    """A budget in several gateways' configs: distinct fleets, so costs (and their percents of the
    same limit) add up; the worst state and the latest action win."""
    if len(figures) == 1:
        return figures[0]
    actions = [f.last_action for f in figures if f.last_action is not None]
    return figures[0].model_copy(
        update={
            "cost": sum((f.cost for f in figures), Decimal(0)),
            "percent": sum((f.percent for f in figures), Decimal(0)),
            "projected": sum((f.projected for f in figures), Decimal(0)),
            "state": max((f.state for f in figures), key=_STATE_RANK.__getitem__),
            "last_action": max(actions, key=lambda a: a.at) if actions else None,
            "source": ",".join(sorted({f.source for f in figures})),
        }
    )


@dataclass(frozen=True)
class Announced:
    """Threshold crossings already turned into Events, kept in status so an operator restart
    never repeats one: the period they belong to, and the thresholds announced in it."""

    period_start: str | None
    thresholds: frozenset[int]

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> Announced:
        return cls(status.get("announcedPeriodStart"), frozenset(status.get("announcedThresholds") or ()))

    def admit(self, period_start: str, threshold: int) -> Announced | None:
        """The record after announcing this crossing, or None when it is old news."""
        if self.period_start is not None and period_start < self.period_start:
            return None  # a late report from a period already over (RFC 3339 UTC sorts as text)
        if period_start == self.period_start:
            return None if threshold in self.thresholds else Announced(period_start, self.thresholds | {threshold})
        return Announced(period_start, frozenset({threshold}))

    def roll(self, period_start: str) -> Announced:
        return (
            self
            if self.period_start is not None and period_start <= self.period_start
            else Announced(period_start, frozenset())
        )


def _event(budget: Budget, c: ThresholdCrossing) -> EventSpec:
    assert budget.spec is not None
    spec = budget.spec
    return EventSpec(
        "Warning",
        "BudgetExceeded" if c.threshold >= 100 else "BudgetThresholdReached",
        f"{c.percent_used}% of ${spec.limit_usd:g} {spec.period} budget used (threshold {c.threshold}%, "
        f"spent ${c.spent_usd}, period from {c.period_start}, action {spec.action})",
    )


def budget_live_status(
    budget: Budget, figure: BudgetFigure | None, crossings: Iterable[ThresholdCrossing], now: datetime
) -> tuple[dict[str, Any], list[EventSpec]]:
    """Fields of CostBudget.status owned by the stats poller, and one Event per new crossing."""
    if budget.spec is None or figure is None:
        return {}, []
    announced = Announced.of(budget.status).roll(figure.period_start)
    events: list[EventSpec] = []
    for c in sorted(crossings, key=lambda c: (c.period_start, c.threshold)):
        if c.budget != budget.name or (after := announced.admit(c.period_start, c.threshold)) is None:
            continue
        announced = after
        events.append(_event(budget, c))
    remaining = max(Decimal(str(budget.spec.limit_usd)) - figure.cost, Decimal(0))
    out: dict[str, Any] = {
        "costThisPeriod": str(figure.cost),
        "remaining": str(remaining.quantize(Decimal("0.0001"))),
        "percentUsed": f"{figure.percent}%",
        "projectedPeriodCost": str(figure.projected),
        "periodStart": figure.period_start,
        "periodEnds": figure.period_ends,
        "state": figure.state,
        "source": figure.source,
        "announcedPeriodStart": announced.period_start,
        "announcedThresholds": sorted(announced.thresholds),
        "lastUpdated": rfc3339(now),
    }
    if figure.last_action is not None:
        out["lastAction"] = {"action": figure.last_action.action, "at": figure.last_action.at}
    return out, events
