"""Hedge delay from a decaying latency histogram, and the histogram itself."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from aimm_gateway.config import HedgingSettings
from aimm_gateway.routing import Tunables
from aimm_gateway.routing.stats import LatencyHistogram, merged_quantile
from tests.unit.test_routing_support import BREAKER, features, model, models_of, new_state, route

ZERO = Decimal(0)


def test_configured_delay_wins() -> None:
    state, _ = new_state()
    r = route(["a"], hedging=HedgingSettings(enabled=True, delay_s=0.25))
    assert state.hedge_delay_s(r) == 0.25


def test_default_until_there_is_enough_data() -> None:
    state, _ = new_state()
    r = route(["a"], hedging=HedgingSettings(enabled=True))
    assert state.hedge_delay_s(r) == Tunables().hedge_default_s
    for _ in range(5):
        state.on_success("a", 3.0, ZERO)
    assert state.hedge_delay_s(r) == Tunables().hedge_default_s  # 5 < min samples


def test_route_p95_across_its_targets() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], hedging=HedgingSettings(enabled=True))
    state, _clock = new_state()
    state.plan(r, ms, features(), BREAKER)
    rng = random.Random(4)
    for _ in range(1000):
        state.on_success(rng.choice("ab"), rng.uniform(0.1, 1.0), ZERO)
    assert state.hedge_delay_s(r) == pytest.approx(0.955, rel=0.12)


def test_floor_applies() -> None:
    state, _ = new_state()
    r = route(["a"], hedging=HedgingSettings(enabled=True))
    for _ in range(50):
        state.on_success("a", 0.0005, ZERO)
    assert state.hedge_delay_s(r) == Tunables().hedge_floor_s


def test_p95_follows_recent_latency() -> None:
    ms = models_of(model("a"))
    r = route(["a"], hedging=HedgingSettings(enabled=True))
    state, clock = new_state()
    state.plan(r, ms, features(), BREAKER)
    for _ in range(200):
        state.on_success("a", 4.0, ZERO)
        clock.advance(0.1)
    assert state.hedge_delay_s(r) == pytest.approx(4.0, rel=0.1)
    clock.advance(600)  # five time constants later the slow period has faded
    for _ in range(200):
        state.on_success("a", 0.2, ZERO)
        clock.advance(0.1)
    assert state.hedge_delay_s(r) == pytest.approx(0.2, rel=0.1)


def test_histogram_quantiles_and_merge() -> None:
    fast, slow = LatencyHistogram(120.0), LatencyHistogram(120.0)
    for i in range(100):
        fast.add(0.01 * (i + 1), 0.0)  # 10 ms .. 1 s
    for _ in range(100):
        slow.add(5.0, 0.0)
    assert fast.quantile(0.5, 0.0) == pytest.approx(0.5, rel=0.1)
    assert fast.quantile(0.95, 0.0) == pytest.approx(0.95, rel=0.1)
    assert merged_quantile([fast, slow], 0.25, 0.0) == pytest.approx(0.5, rel=0.1)
    assert merged_quantile([fast, slow], 0.9, 0.0) == pytest.approx(5.0, rel=0.1)
    assert LatencyHistogram(1.0).quantile(0.5, 0.0) is None


def test_idle_target_old_latency_fades_from_the_route_p95() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], hedging=HedgingSettings(enabled=True))
    state, clock = new_state()
    state.plan(r, ms, features(), BREAKER)
    for _ in range(100):
        state.on_success("a", 8.0, ZERO)  # a was slow, then got no more traffic
    clock.advance(1200)  # ten time constants
    for _ in range(100):
        state.on_success("b", 0.3, ZERO)
    assert state.hedge_delay_s(r) == pytest.approx(0.3, rel=0.1)
