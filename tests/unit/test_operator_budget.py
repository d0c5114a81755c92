"""CostBudget status from the gateways' figures: merge across gateways, and threshold Events once each."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aimm_operator.budget import Announced, BudgetFigure, PodBudgets, budget_live_status, merge_figures
from tests.unit.operator_fixtures import body, budget, snapshot

NOW = datetime(2026, 3, 16, 12, tzinfo=UTC)
MARCH, APRIL = "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"


def figure(cost: str, pct: str, state: str = "OK", start: str = MARCH, **extra: Any) -> BudgetFigure:
    return BudgetFigure.model_validate(
        {
            "name": "b",
            "costThisPeriod": cost,
            "percentUsed": pct,
            "projectedPeriodCost": str(Decimal(cost) * 2),
            "periodStart": start,
            "periodEnds": APRIL if start == MARCH else "2026-05-01T00:00:00Z",
            "state": state,
            "lastAction": None,
            "source": "state",
            "limitUsd": "10",  # extra keys from the gateway are ignored
        }
        | extra
    )


def crossing(threshold: int, start: str = MARCH, name: str = "b") -> dict[str, Any]:
    return {"budget": name, "threshold": threshold, "percentUsed": "85.0", "spentUsd": "8.5", "periodStart": start}


def doc(*crossings: dict[str, Any]) -> PodBudgets:
    return PodBudgets.model_validate({"budgets": [], "thresholdEvents": list(crossings)})


def with_status(status: dict[str, Any]):
    return snapshot(budgets=[body("CostBudget", "b", {"limitUSD": 10, "action": "block"}, status=status)]).budgets[0]


def test_status_copies_the_gateways_figures() -> None:
    b = snapshot(budgets=[budget("b", 10, alertThresholds=[50, 80, 100])]).budgets[0]
    fig = figure("8.5000", "85.0", "Warning", lastAction={"action": "alert", "at": "2026-03-10T00:00:00Z"})
    st, events = budget_live_status(b, fig, [], NOW)
    assert (st["costThisPeriod"], st["remaining"], st["percentUsed"]) == ("8.5000", "1.5000", "85.0%")
    assert (st["projectedPeriodCost"], st["periodStart"], st["periodEnds"]) == ("17.0000", MARCH, APRIL)
    assert st["state"] == "Warning" and st["lastAction"] == {"action": "alert", "at": "2026-03-10T00:00:00Z"}
    assert events == [] and st["announcedThresholds"] == []
    assert budget_live_status(b, None, doc(crossing(50)).threshold_events, NOW) == ({}, [])


def test_each_crossing_becomes_one_event_even_reported_twice() -> None:
    b = with_status({})
    crossings = doc(crossing(80), crossing(50), crossing(50)).threshold_events
    st, events = budget_live_status(b, figure("8.5", "85.0"), crossings, NOW)
    assert [e.reason for e in events] == ["BudgetThresholdReached", "BudgetThresholdReached"]
    assert "threshold 50%" in events[0].message and "action block" in events[0].message
    assert (st["announcedPeriodStart"], st["announcedThresholds"]) == (MARCH, [50, 80])
    # The next poll (or a restarted operator) reads the record from status: nothing repeats.
    again, events = budget_live_status(with_status(st), figure("9", "90.0"), crossings, NOW)
    assert events == [] and again["announcedThresholds"] == [50, 80]
    over = doc(crossing(50), crossing(100)).threshold_events
    _, events = budget_live_status(with_status(st), figure("10", "100.0", "Exceeded"), over, NOW)
    assert [e.reason for e in events] == ["BudgetExceeded"]


def test_a_new_period_announces_again_and_ignores_late_old_crossings() -> None:
    st, _ = budget_live_status(with_status({}), figure("8.5", "85.0"), doc(crossing(50)).threshold_events, NOW)
    april = figure("6", "60.0", start=APRIL)
    late_and_new = doc(crossing(80, MARCH), crossing(50, APRIL)).threshold_events
    nxt, events = budget_live_status(with_status(st), april, late_and_new, NOW)
    assert len(events) == 1 and APRIL in events[0].message
    assert (nxt["announcedPeriodStart"], nxt["announcedThresholds"]) == (APRIL, [50])
    # A new period with no crossing yet clears the record.
    quiet, _ = budget_live_status(with_status(st), april, [], NOW)
    assert (quiet["announcedPeriodStart"], quiet["announcedThresholds"]) == (APRIL, [])


def test_announced_admit() -> None:
    a = Announced(MARCH, frozenset({50}))
    assert a.admit(MARCH, 50) is None and a.admit("2026-02-01T00:00:00Z", 80) is None
    assert a.admit(MARCH, 80) == Announced(MARCH, frozenset({50, 80}))
    assert a.admit(APRIL, 50) == Announced(APRIL, frozenset({50}))
    assert Announced(None, frozenset()).admit(MARCH, 100) == Announced(MARCH, frozenset({100}))


def test_merge_figures_of_distinct_fleets() -> None:
    a = figure("3", "30.0", lastAction={"action": "alert", "at": "2026-03-02T00:00:00Z"})
    b = figure("6", "60.0", "Warning", lastAction={"action": "block", "at": "2026-03-05T00:00:00Z"})
    m = merge_figures([a, b])
    assert (m.cost, m.percent, m.projected, m.state) == (Decimal(9), Decimal("90.0"), Decimal(18), "Warning")
    assert m.last_action is not None and m.last_action.action == "block"
    assert merge_figures([a]) is a
