"""Cost governance for one process: shared state, usage store, budgets, response cache.

Built once per process from the config (state and store settings take effect at start: the
operator rolls the pods when the AIGateway's `redis` or `database` changes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial

from aimm_gateway.budget.alerts import AlertSink
from aimm_gateway.budget.enforcer import BudgetEnforcer, Clock
from aimm_gateway.budget.key_budgets import KeyBudgets
from aimm_gateway.budget.metrics import CostMetrics
from aimm_gateway.budget.periods import window
from aimm_gateway.cache.response import ResponseCache
from aimm_gateway.config import BudgetConfig, GatewayConfig
from aimm_gateway.security.identity import Identity
from aimm_gateway.state.base import StateUnavailable
from aimm_gateway.state.factory import build_state
from aimm_gateway.state.units import from_units
from aimm_gateway.store.service import UsageService
from aimm_gateway.store.sql import Scope

log = logging.getLogger("aimm.budget")
WATCH_INTERVAL_S = 2.0


def scope_of(budget: BudgetConfig) -> Scope:
    namespaces = [budget.namespace] if budget.namespace is not None else []
    return Scope(
        models=budget.models, key_names=budget.api_keys, routes=budget.routes, teams=budget.teams, namespaces=namespaces
    )


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


class CostServices:
    def __init__(self, config: GatewayConfig, metrics: CostMetrics, clock: Clock | None = None) -> None:
        self._config = config
        self.metrics = metrics  # the gateway's series (GatewayMetrics)
        self.state = build_state(config.state)
        self.usage = UsageService(config.store, self.metrics) if config.store is not None else None
        self.alerts = AlertSink(self.metrics)
        self.budgets = BudgetEnforcer(self.state, self.metrics, self.alerts, clock)
        self.cache = ResponseCache(self.state, self.metrics)
        self.key_budgets = KeyBudgets()
        self._watch: asyncio.Task[None] | None = None
        self._history: dict[tuple[str, date], Decimal] = {}  # (budget, past day) -> settled spend

    def check_reload(self, config: GatewayConfig) -> None:
        """State and store are opened once per process: say so when a reload changes them."""
        if config.state != self._config.state or config.store != self._config.store:
            log.warning("state/store settings changed: they take effect when the gateway restarts")

    async def start(self, budgets: Callable[[], list[BudgetConfig]]) -> None:
        if self.usage is not None:
            await self.usage.start()
            await self._reconcile_missing(budgets())
        self._watch = asyncio.create_task(self._watch_state(budgets), name="aimm-budget-reconcile")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.usage is not None:
            await self.usage.stop()
        await self.alerts.drain()
        await self.state.close()

    # -- settled spend from the store -----------------------------------------------------------

    @property
    def store_ready(self) -> bool:
        return self.usage is not None and self.usage.ready

    async def settled(self, budget: BudgetConfig, since: datetime, until: datetime) -> Decimal:
        assert self.usage is not None
        return from_units(await self.usage.store.spend_units(_ms(since), _ms(until), scope_of(budget)))

    async def daily_history(self, budget: BudgetConfig, today: date, days: int = 28) -> list[tuple[date, Decimal]]:
        """Settled spend per UTC day for the `days` before today (past days are cached: they no longer change)."""
        out = []
        for i in range(days, 0, -1):
            day = today - timedelta(days=i)
            key = (budget.name, day)
            if key not in self._history:
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                self._history[key] = await self.settled(budget, start, start + timedelta(days=1))
            out.append((day, self._history[key]))
        oldest = today - timedelta(days=days)
        self._history = {k: v for k, v in self._history.items() if k[1] >= oldest}  # bounded: days x budgets
        return out

    async def key_budget(self, identity: Identity | None) -> BudgetConfig | None:
        """The caller's per-key budget; the first time this process sees it, a counter the state
        lacks (in-process state after a restart) is rebuilt from the store."""
        budget, fresh = self.key_budgets.budget_for(identity)
        if budget is not None and fresh and self.store_ready:
            await self._reconcile_missing([budget])
        return budget

    # -- reconciliation ---------------------------------------------------------------------------

    async def _reconcile_missing(self, budgets: list[BudgetConfig]) -> None:
        """At start: a counter the state does not have (in-process state after a restart, a Redis
        that lost its data) is rebuilt from the store; one that exists is left alone."""
        for budget in budgets:
            try:
                if await self.state.spent(window(budget, self.budgets.clock()).key) == 0:
                    await self.budgets.reconcile(budget, partial(self.settled, budget))
            except StateUnavailable:
                self.budgets.stale.add(budget.name)

    async def reconcile_stale(self, budgets: list[BudgetConfig]) -> bool:
        """After an outage: write queued rows, then reset the stale counters from the store."""
        if not self.budgets.stale or not self.store_ready:
            return False
        assert self.usage is not None
        await self.usage.writer.flush()
        for budget in budgets:
            if budget.name in self.budgets.stale:
                await self.budgets.reconcile(budget, partial(self.settled, budget))
                self.budgets.stale.discard(budget.name)
                log.info("budget %s reconciled from the usage store", budget.name)
        return True

    async def _watch_state(self, budgets: Callable[[], list[BudgetConfig]]) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if not self.budgets.stale:
                continue
            try:
                await self.state.spent("ping")
                await self.reconcile_stale(budgets())
            except StateUnavailable:
                continue  # still down
            except Exception:
                log.exception("budget reconciliation failed")
