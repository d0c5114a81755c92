"""Budget enforcement against the state layer, with an injected clock (no sleeping, no mocks of the state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aimm_gateway.budget.alerts import AlertSink, ThresholdEvent
from aimm_gateway.budget.enforcer import (
    BudgetEnforcer,
    BudgetExhausted,
    BudgetStateUnavailable,
    Estimates,
)
from aimm_gateway.budget.periods import window
from aimm_gateway.budget.policy import Caller
from aimm_gateway.config import BudgetConfig
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.state.memory import MemoryState
from aimm_gateway.state.redis import RedisState
from tests.backing import free_port
from tests.servers import run_asgi_app

CALLER = Caller("team-a", "alpha", None)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def enforcer(state: Any = None, clock: Clock | None = None) -> tuple[BudgetEnforcer, list[ThresholdEvent]]:
    metrics = GatewayMetrics()
    sink = AlertSink(metrics)
    fired: list[ThresholdEvent] = []
    sink.hooks.append(fired.append)
    clock = clock or Clock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    return BudgetEnforcer(state or MemoryState(), metrics, sink, clock), fired


def budget(**extra: Any) -> BudgetConfig:
    fields: dict[str, Any] = {"name": "team-a", "limit_usd": "1.00", "period": "monthly", "action": "block"}
    fields.update(extra)
    return BudgetConfig.model_validate(fields)


def est(most: str, least: str | None = None, **downgrade: str) -> Estimates:
    return Estimates(Decimal(most), Decimal(least or most), {k: Decimal(v) for k, v in downgrade.items()})


async def test_block_refuses_only_what_cannot_fit() -> None:
    enf, _ = enforcer()
    b = budget()
    first = await enf.admit([b], est("0.40"))
    second = await enf.admit([b], est("0.40"))
    with pytest.raises(BudgetExhausted) as refused:
        await enf.admit([b], est("0.40"))  # 0.80 held + 0.40 > 1.00
    err = refused.value
    assert err.status == 429 and err.type == "insufficient_quota"
    assert "'team-a'" in err.message and "resets at 2026-12-01T00:00:00Z" in err.message
    assert int(err.headers["retry-after"]) == 12 * 3600
    # Settling to the real (smaller) cost releases the rest of the reservation.
    await enf.settle(first, [("m", Decimal("0.10"))], CALLER)
    await enf.settle(second, [("m", Decimal("0.10"))], CALLER)
    third = await enf.admit([b], est("0.40"))
    assert len(third.holds) == 1
    assert await enf.state.spent(window(b, enf.clock()).key) == Decimal("0.6")


async def test_only_the_cheapest_fits_sets_the_routers_cost_ceiling() -> None:
    enf, _ = enforcer()
    b = budget()
    await enf.admit([b], est("0.90"))
    admitted = await enf.admit([b], est("0.50", "0.05"))  # 0.50 cannot fit, the cheapest target can
    assert admitted.max_cost_usd == Decimal("0.05") * Decimal("1.000001")  # float slack for the router


async def test_out_of_scope_answer_settles_to_zero() -> None:
    enf, _ = enforcer()
    b = budget(models=["gpt-big"])
    held = await enf.admit([b], est("0.50"))
    await enf.settle(held, [("gpt-small", Decimal("0.30"))], CALLER)  # answered by a model outside the scope
    assert await enf.state.spent(window(b, enf.clock()).key) == 0


async def test_downgrade_routes_to_the_cheaper_model() -> None:
    enf, _ = enforcer()
    b = budget(action="downgrade", downgrade_to="gpt-mini")
    await enf.admit([b], est("0.95"))
    admitted = await enf.admit([b], est("0.50", gpt_mini="0.01"))
    assert admitted.downgrade_to == "gpt-mini"
    assert admitted.reason == "budget team-a exhausted: downgraded to gpt-mini"
    assert enf.last_action["team-a"]["action"] == "downgrade"


async def test_thresholds_fire_once_per_period_across_a_boundary() -> None:
    clock = Clock(datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    state = MemoryState(clock=lambda: clock.now.timestamp())
    replica_a, fired_a = enforcer(state, clock)
    replica_b, fired_b = enforcer(state, clock)  # a second replica sharing the state
    b = budget(action="alert", thresholds=[50, 80, 100])

    async def spend(enf: BudgetEnforcer, usd: str) -> None:
        await enf.settle(await enf.admit([b], est("0.50")), [("m", Decimal(usd))], CALLER)

    await spend(replica_a, "0.30")
    assert fired_a == fired_b == []
    await spend(replica_b, "0.25")  # 55 %
    await spend(replica_a, "0.30")  # 85 %
    await spend(replica_b, "0.01")  # still 86 %: nothing new
    events = fired_a + fired_b
    assert sorted(e.threshold for e in events) == [50, 80]
    assert events[0].period_ends == "2026-12-01T00:00:00Z"
    await spend(replica_a, "0.20")  # 106 %, alert action: served on
    assert sorted(e.threshold for e in fired_a + fired_b) == [50, 80, 100]
    clock.now = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # next period: counters and alerts start over
    await spend(replica_b, "0.60")
    new = [e for e in fired_a + fired_b if e.period_start == "2026-12-01T00:00:00Z"]
    assert [e.threshold for e in new] == [50]
    assert await state.spent(window(b, clock.now).key) == Decimal("0.6")


async def test_monthly_period_in_a_time_zone() -> None:
    b = budget(timezone="America/New_York")
    w = window(b, datetime(2026, 12, 1, 3, 0, tzinfo=UTC))  # still Nov 30 in New York
    assert w.start == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # EDT until Nov 1, 02:00
    assert w.end == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # EST
    weekly = window(budget(period="weekly"), datetime(2026, 11, 26, 10, tzinfo=UTC))  # a Thursday
    assert weekly.start == datetime(2026, 11, 23, tzinfo=UTC) and weekly.end == datetime(2026, 11, 30, tzinfo=UTC)


async def test_rolling_window_ages_out_hour_by_hour() -> None:
    clock = Clock(datetime(2026, 11, 30, 10, 15, tzinfo=UTC))
    state = MemoryState(clock=lambda: clock.now.timestamp())
    enf, _ = enforcer(state, clock)
    b = budget(period="rolling", rolling_hours=3)
    await enf.settle(await enf.admit([b], est("0.60")), [("m", Decimal("0.60"))], CALLER)
    clock.now += timedelta(hours=1)
    with pytest.raises(BudgetExhausted):
        await enf.admit([b], est("0.60"))  # 0.60 from an hour ago still counts
    clock.now += timedelta(hours=2)  # 13:15: the 10:00 hour has left the 3-hour window
    assert len((await enf.admit([b], est("0.60"))).holds) == 1


async def test_state_down_fail_open_or_closed() -> None:
    dead = RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout_ms=50)
    enf, _ = enforcer(dead)
    opened = await enf.admit([budget(fail_mode="open")], est("0.10"))
    assert opened.holds[0].reservation is None and enf.stale == {"team-a"}
    with pytest.raises(BudgetStateUnavailable) as closed:
        await enf.admit([budget(name="strict", fail_mode="closed")], est("0.10"))
    assert closed.value.status == 503
    await dead.close()


async def test_reconcile_sets_counters_from_settled_spend() -> None:
    enf, _ = enforcer()
    b = budget()
    seen: list[tuple[datetime, datetime]] = []

    async def settled(since: datetime, until: datetime) -> Decimal:
        seen.append((since, until))
        return Decimal("0.95")

    await enf.reconcile(b, settled)
    assert seen == [(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 12, tzinfo=UTC))]
    with pytest.raises(BudgetExhausted):
        await enf.admit([b], est("0.10"))


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        got.append({"path": request.url.path, "body": await request.json()})
        return Response(status_code=204)

    app = Starlette(routes=[Route("/{name}", hook, methods=["POST"])])
    with run_asgi_app(app) as url:
        yield url, got


async def test_webhooks_generic_and_slack(
    receiver: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, got = receiver
    monkeypatch.setenv("AIMM_TEST_HOOK", f"{url}/generic")
    monkeypatch.setenv("AIMM_TEST_SLACK", f"{url}/slack")
    enf, _ = enforcer()
    b = budget(
        action="alert", thresholds=[50], webhook={"env": "AIMM_TEST_HOOK"}, slack_webhook={"env": "AIMM_TEST_SLACK"}
    )
    await enf.settle(await enf.admit([b], est("0.9")), [("m", Decimal("0.7"))], CALLER)
    await enf.alerts.drain()
    by_path: dict[str, Callable[[], Any]] = {g["path"]: g["body"] for g in got}  # type: ignore[misc]
    generic: Any = by_path["/generic"]
    assert generic["budget"] == "team-a" and generic["threshold"] == 50 and generic["percent_used"] == "70.0"
    slack: Any = by_path["/slack"]
    assert "*team-a* reached 50%" in slack["text"] and slack["blocks"][0]["type"] == "section"
