"""`aimm report --period 2026-11 --out report.pdf`: the period's PDF straight from the usage store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aimm_gateway.analytics.periods import period_range
from aimm_gateway.analytics.report import write_pdf
from aimm_gateway.budget.enforcer import rfc3339
from aimm_gateway.budget.periods import window
from aimm_gateway.budget.policy import percent
from aimm_gateway.budget.services import scope_of
from aimm_gateway.budget.status import budget_state
from aimm_gateway.config import BudgetConfig, load_config
from aimm_gateway.state.units import from_units
from aimm_gateway.store.base import StoreError, UsageStore
from aimm_gateway.store.factory import build_store

CENT4 = Decimal("0.0001")


async def budget_rows(store: UsageStore, budgets: list[BudgetConfig], at: datetime) -> list[dict[str, Any]]:
    """Each budget's period containing `at` (the report's last instant), spend from the store."""
    out = []
    for budget in budgets:
        win = window(budget, at)
        until = min(win.end, datetime.now(UTC))
        spent = from_units(
            await store.spend_units(int(win.start.timestamp() * 1000), int(until.timestamp() * 1000), scope_of(budget))
        )
        pct = percent(spent, budget.limit_usd)
        out.append(
            {
                "name": budget.name,
                "period": budget.period,
                "limitUsd": str(budget.limit_usd),
                "costThisPeriod": str(spent.quantize(CENT4)),
                "percentUsed": str(pct.quantize(Decimal("0.1"))),
                "projectedPeriodCost": str(spent.quantize(CENT4)) if until >= win.end else "",
                "state": budget_state(pct, budget.thresholds),
                "periodEnds": rfc3339(win.end),
            }
        )
    return out


async def _collect(config_path: str, period: str) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    config = load_config(config_path)
    if config.store is None:
        raise StoreError(f"{config_path}: no `store:` section; reports are made from the usage store")
    start, end, label = period_range(period)
    store = build_store(config.store)
    await store.open()
    try:
        rows = await store.fetch(int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        budgets = await budget_rows(store, config.budgets, end - timedelta(seconds=1))
    finally:
        await store.close()
    return label, rows, budgets


def write_report(config_path: str, period: str, out: str) -> str:
    label, rows, budgets = asyncio.run(_collect(config_path, period))
    path = Path(out)
    with path.open("wb") as fh:
        write_pdf(fh, label, rows, budgets)
    return f"wrote {path} ({len(rows)} requests, {len(budgets)} budgets, {label})"
