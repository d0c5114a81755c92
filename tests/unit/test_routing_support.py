"""Shared helpers for the routing tests (plus tests of the small shared pieces)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from aimm_gateway.config import CircuitBreakerSettings, ModelConfig, RouteConfig, RouteTarget
from aimm_gateway.routing import FakeClock, RequestFeatures, RouterState, SystemClock
from aimm_gateway.routing.compiled import header_safe

BREAKER = CircuitBreakerSettings()


def model(name: str, **kw: Any) -> ModelConfig:
    return ModelConfig(name=name, provider="mock", **kw)


def models_of(*ms: ModelConfig) -> dict[str, ModelConfig]:
    return {m.name: m for m in ms}


def route(targets: list[str | RouteTarget], name: str = "r", **kw: Any) -> RouteConfig:
    return RouteConfig(name=name, targets=[RouteTarget(model=t) if isinstance(t, str) else t for t in targets], **kw)


def features(
    prompt: int = 100,
    max_out: int | None = None,
    caps: tuple[str, ...] = (),
    max_cost: str | None = None,
    fallback: str | None = None,
) -> RequestFeatures:
    return RequestFeatures(
        prompt_tokens=prompt,
        max_output_tokens=max_out,
        required_capabilities=frozenset(caps),
        max_cost_usd=None if max_cost is None else Decimal(max_cost),
        fallback_model=fallback,
    )


def new_state(seed: int = 1) -> tuple[RouterState, FakeClock]:
    clock = FakeClock()
    return RouterState(clock, random.Random(seed)), clock


def serve(state: RouterState, clock: FakeClock, name: str, latency: float, ok: bool = True, cost: str = "0") -> None:
    """One request to `name` taking `latency` seconds on the fake clock."""
    assert state.acquire(name)
    state.on_start(name)
    clock.advance(latency)
    if ok:
        state.on_success(name, latency, Decimal(cost))
    else:
        state.on_failure(name, "http", 500, latency)


def first_pick(state: RouterState, r: RouteConfig, ms: dict[str, ModelConfig], f: RequestFeatures | None = None) -> str:
    plan = state.plan(r, ms, f or features(), BREAKER)
    assert plan.attempts, plan
    return plan.attempts[0]


def test_fake_clock_only_moves_forward() -> None:
    clock = FakeClock(5.0)
    clock.advance(1.5)
    assert clock.monotonic() == 6.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    a = clock.monotonic()
    assert clock.monotonic() >= a


def test_header_safe_keeps_plain_names_and_replaces_the_rest() -> None:
    assert header_safe("gpt-4o-mini") == "gpt-4o-mini"
    assert header_safe("mödel\r\nx: y") == "m_del__x:_y"
    assert len(header_safe("x" * 500)) == 64
