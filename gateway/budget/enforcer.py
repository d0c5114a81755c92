"""Budgets enforced with reserve-then-settle on the state layer.

Before the call: for each budget the request touches, reserve the most it can cost (one state
round trip per budget); a `block` budget refuses when even the cheapest candidate cannot fit,
a `downgrade` budget sends the request to its cheaper model, an `alert` budget only counts.
After the call: settle each reservation to the real cost (0 when the model that answered is
outside the budget's scope), then fire thresholds reached for the first time this period.
With the state unreachable, each budget applies its fail mode; spend goes on being recorded in
the usage store, and the counters are reconciled from it once the state answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from aimm_gateway.budget.alerts import AlertSink, ThresholdEvent
from aimm_gateway.budget.metrics import CostMetrics
from aimm_gateway.budget.periods import Window, state_ttl_s, window
from aimm_gateway.budget.policy import Caller, in_scope, newly_reached, percent
from aimm_gateway.config import BudgetConfig
from aimm_gateway.errors import GatewayError
from aimm_gateway.state.base import Reservation, StateStore, StateUnavailable

log = logging.getLogger("aimm.budget")
LAST_ACTION = "budget-last-action:"
LIMITLESS = Decimal(100_000_000)
# The router compares float estimates: one part per million keeps the target whose estimate *is*
# the reservation from being dropped by float rounding (5 x 1e-5 = 5.000000000000001e-05).
ROUTER_SLACK = Decimal("1.000001")  # alert/downgrade budgets count spend without a ceiling
Clock = Callable[[], datetime]


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BudgetExhausted(GatewayError, status=429, type="insufficient_quota", code="insufficient_quota"):
    """OpenAI's shape for an exhausted quota: 429 with `type: insufficient_quota`."""


class BudgetStateUnavailable(GatewayError, status=503, type="service_unavailable", code="budget_state_unavailable"): ...


@dataclass(slots=True)
class Hold:
    budget: BudgetConfig
    window: Window
    reservation: Reservation | None  # None: the state was unreachable and the budget fails open
    prior: Decimal = Decimal(0)  # rolling windows: spend in the earlier hours of the window


@dataclass(slots=True)
class Admission:
    holds: list[Hold] = field(default_factory=list)
    max_cost_usd: Decimal | None = None
    downgrade_to: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Estimates:
    """Reservation amounts: the most expensive candidate, the cheapest, and the downgrade targets'."""

    most: Decimal
    least: Decimal
    downgrade: dict[str, Decimal]


class BudgetEnforcer:
    def __init__(self, state: StateStore, metrics: CostMetrics, alerts: AlertSink, clock: Clock | None = None) -> None:
        self.state = state
        self._metrics = metrics
        self.alerts = alerts
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self._announced: dict[str, set[int]] = {}  # window key -> thresholds known to be fired
        self._prior: dict[str, Decimal] = {}  # rolling: current-hour key -> earlier hours' spend
        self.stale: set[str] = set()  # budgets whose counters missed spend while the state was down
        self._windows: dict[str, tuple[BudgetConfig, Window, float]] = {}  # name -> current period, state ttl
        self.last_action: dict[str, dict[str, str]] = {}

    # -- before the call ---------------------------------------------------------------------------

    async def admit(self, budgets: list[BudgetConfig], est: Estimates) -> Admission:
        admission = Admission()
        now = self.clock()
        try:
            for budget in budgets:
                await self._admit_one(budget, est, now, admission)
        except BaseException:
            await self.release(admission)
            raise
        return admission

    def current(self, budget: BudgetConfig, now: datetime) -> tuple[Window, float]:
        """The budget's period containing `now` and its state TTL, computed once per period."""
        known = self._windows.get(budget.name)
        if known is not None and known[0] is budget and now < known[1].end:
            return known[1], known[2]
        win = window(budget, now)
        ttl = state_ttl_s(budget, win, now)
        if known is not None and known[1].key != win.key:
            self._announced.pop(known[1].key, None)  # a past period's thresholds: no longer needed
        self._windows[budget.name] = (budget, win, ttl)
        return win, ttl

    async def _admit_one(self, budget: BudgetConfig, est: Estimates, now: datetime, adm: Admission) -> None:
        win, ttl = self.current(budget, now)
        try:
            prior = await self._prior_spend(budget, win)
            limit = LIMITLESS if budget.action == "alert" else budget.limit_usd - prior
            res = await self.state.reserve(win.key, est.most, limit, ttl)
            if res is None and budget.action != "alert" and est.least < est.most:
                res = await self.state.reserve(win.key, est.least, limit, ttl)
                if res is not None:  # only the cheapest targets fit: the router filters the rest out
                    ceiling = est.least * ROUTER_SLACK
                    adm.max_cost_usd = ceiling if adm.max_cost_usd is None else min(adm.max_cost_usd, ceiling)
            if res is None and budget.action == "downgrade":
                assert budget.downgrade_to is not None
                adm.downgrade_to = budget.downgrade_to
                adm.reason = f"budget {budget.name} exhausted: downgraded to {budget.downgrade_to}"
                await self._note(budget, "downgrade", now)
                amount = est.downgrade.get(budget.downgrade_to, est.least)
                res = await self.state.reserve(win.key, amount, LIMITLESS, ttl)
            if res is None:
                await self._note(budget, "block", now)
                raise self._exhausted(budget, win, prior + await self.state.spent(win.key), now)
        except StateUnavailable as exc:
            self._metrics.state_unavailable.labels("budget", budget.fail_mode).inc()
            self.stale.add(budget.name)
            if budget.fail_mode == "closed":
                raise BudgetStateUnavailable(
                    f"budget {budget.name!r} cannot be checked right now; retry shortly"
                ) from exc
            log.warning("budget %s: state unavailable (%s), failing open", budget.name, exc)
            res = None
        adm.holds.append(Hold(budget, win, res, prior if budget.period == "rolling" else Decimal(0)))

    async def _prior_spend(self, budget: BudgetConfig, win: Window) -> Decimal:
        """Rolling windows: the earlier hours' spend, read once per hour per process."""
        if not win.prior_keys:
            return Decimal(0)
        known = self._prior.get(win.key)
        if known is None:
            known = Decimal(0)
            for key in win.prior_keys:
                known += await self.state.spent(key)
            mine = f"budget:{budget.name}:"
            self._prior = {k: v for k, v in self._prior.items() if not k.startswith(mine)}  # drop past hours
            self._prior[win.key] = known
        return known

    def _exhausted(self, budget: BudgetConfig, win: Window, spent: Decimal, now: datetime) -> BudgetExhausted:
        resets = rfc3339(win.end)
        retry = max(1, int(win.remaining_s(now)))
        return BudgetExhausted(
            f"budget {budget.name!r} is exhausted: ${spent.quantize(Decimal('0.0001'))} of "
            f"${budget.limit_usd} spent this {budget.period} period; it resets at {resets}",
            headers={"retry-after": str(retry), "x-aimm-budget": budget.name},
        )

    # -- after the call -----------------------------------------------------------------------------

    async def release(self, admission: Admission) -> None:
        """Give back every reservation (the request never reached an upstream)."""
        await self.settle(admission, (), Caller(None, None, None), fire=False)

    async def settle(
        self, admission: Admission, charges: Sequence[tuple[str, Decimal]], caller: Caller, fire: bool = True
    ) -> None:
        """Settle each hold to what the request really cost: every billed attempt `(model, cost)`
        whose model is in the budget's scope (a fallback or hedge winner may be outside it)."""
        for hold in admission.holds:
            if hold.reservation is None:
                continue
            actual = sum((c for m, c in charges if in_scope(hold.budget, caller, m)), Decimal(0))
            try:
                total = await self.state.settle(hold.reservation, actual)
                if fire and actual > 0:
                    await self._thresholds(hold, total + hold.prior)
            except StateUnavailable:
                self._metrics.state_unavailable.labels("budget", "settle").inc()
                self.stale.add(hold.budget.name)
        admission.holds = []

    async def charge(self, budgets: list[BudgetConfig], caller: Caller, model: str, cost: Decimal) -> None:
        """Count money already spent on the caller's behalf outside its call (the semantic cache's
        embedding) against every budget in scope: never refused (it is spent), thresholds fire."""
        held = Admission()
        now = self.clock()
        for budget in budgets:
            if not in_scope(budget, caller, model):
                continue
            win, ttl = self.current(budget, now)
            try:
                prior = await self._prior_spend(budget, win)
                res = await self.state.reserve(win.key, Decimal(0), LIMITLESS, ttl)
            except StateUnavailable:
                self._metrics.state_unavailable.labels("budget", "charge").inc()
                self.stale.add(budget.name)  # the usage row holds the spend: reconciled later
                continue
            held.holds.append(Hold(budget, win, res, prior))
        await self.settle(held, [(model, cost)], caller)

    async def _thresholds(self, hold: Hold, total: Decimal) -> None:
        budget, win = hold.budget, hold.window
        pct = percent(total, budget.limit_usd)
        announced = self._announced.setdefault(win.key, set())  # pruned when the period changes (current())
        for threshold in newly_reached(pct, budget.thresholds, announced):
            announced.add(threshold)
            if not await self.state.once(f"{win.key}:t{threshold}", state_ttl_s(budget, win, self.clock())):
                continue  # another replica announced it already
            now = self.clock()
            event = ThresholdEvent(
                budget=budget.name,
                threshold=threshold,
                percent_used=str(pct.quantize(Decimal("0.1"))),
                spent_usd=str(total.quantize(Decimal("0.0001"))),
                limit_usd=str(budget.limit_usd),
                period_start=rfc3339(win.start),
                period_ends=rfc3339(win.end),
                action=budget.action,
                at=rfc3339(now),
            )
            self.alerts.fire(event, budget)
            await self._note(budget, f"alert:{threshold}", now)

    async def _note(self, budget: BudgetConfig, action: str, now: datetime) -> None:
        """Count the action; share it (state) when it changes, so every replica reports the same."""
        if action in ("block", "downgrade"):
            self._metrics.budget_refused.labels(budget.name, action).inc()
        known = self.last_action.get(budget.name)
        if known is not None and known["action"] == action:
            return
        note = {"action": action, "at": rfc3339(now)}
        self.last_action[budget.name] = note
        try:
            await self.state.cache_set(LAST_ACTION + budget.name, orjson.dumps(note), 400 * 86_400)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("budget", "note").inc()

    async def shared_last_action(self, budget: BudgetConfig) -> dict[str, str] | None:
        try:
            raw = await self.state.cache_get(LAST_ACTION + budget.name)
        except StateUnavailable:
            raw = None
        if raw is None:
            return self.last_action.get(budget.name)
        note: dict[str, str] = orjson.loads(raw)
        return note

    # -- reconciliation --------------------------------------------------------------------------------

    async def reconcile(
        self, budget: BudgetConfig, settled: Callable[[datetime, datetime], Awaitable[Decimal]]
    ) -> None:
        """Set the budget's counters from settled spend (the usage store): after an outage, at start."""
        now = self.clock()
        win = window(budget, now)
        ttl = state_ttl_s(budget, win, now)
        if budget.period != "rolling":
            await self.state.set_spent(win.key, await settled(win.start, now), ttl)
            return
        current_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        for i, key in enumerate((win.key, *win.prior_keys)):
            start = current_hour - timedelta(hours=i)
            end = now if i == 0 else start + timedelta(hours=1)
            await self.state.set_spent(key, await settled(start, end), ttl)
        self._prior.pop(win.key, None)
