"""Retry backoff (full jitter, Retry-After) and the retry budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from aimm_gateway.config import RetrySettings
from aimm_gateway.routing import FakeClock, RetryBudget, RetryPolicy, parse_retry_after, parse_retry_after_ms

SETTINGS = RetrySettings(attempts=5, backoff_initial_s=0.1, backoff_max_s=2.0, budget_ratio=0.2)


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.6), (6, 2.0), (40, 2.0)]
)
def test_backoff_is_full_jitter_within_the_exponential_ceiling(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(SETTINGS, random.Random(3))
    delays = [policy.backoff_s(attempt, None) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter: the whole [0, ceiling] range is used, not just its upper half.
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling


def test_retry_after_is_a_floor_plus_jitter() -> None:
    policy = RetryPolicy(SETTINGS, random.Random(3))
    delays = [policy.backoff_s(2, 3.0) for _ in range(1000)]
    assert all(3.0 <= d <= 3.2 for d in delays)
    assert max(delays) - min(delays) > 0.15  # still spread, so retries do not arrive in waves


def test_retry_after_is_capped_by_its_own_cap() -> None:
    policy = RetryPolicy(SETTINGS, random.Random(3), retry_after_cap_s=10.0)
    assert policy.backoff_s(1, 120.0) == 10.0
    assert 9.9 <= policy.backoff_s(1, 9.9) <= 10.0
    assert policy.exceeds_cap(120.0)
    assert not policy.exceeds_cap(5.0)
    assert not policy.exceeds_cap(None)


def test_policy_and_budget_have_working_defaults() -> None:
    assert 0.0 <= RetryPolicy(SETTINGS).backoff_s(1, None) <= 0.1
    budget = RetryBudget(0.2)
    budget.deposit()
    assert budget.try_withdraw()


def test_budget_caps_retries_at_the_ratio_under_a_full_outage() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, clock, min_per_s=1.0, capacity=10.0)
    requests, retries = 10_000, 0
    for _ in range(requests):
        budget.deposit()
        while budget.try_withdraw():  # every request fails and would retry forever
            retries += 1
            if retries > requests:
                break
        clock.advance(0.0001)  # 1 s in total: the 1/s floor adds ~1 retry
    assert retries == pytest.approx(0.2 * requests, abs=12)  # + initial burst + floor
    assert retries / requests <= 0.2 + 11 / requests


def test_budget_floor_lets_low_traffic_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, clock, min_per_s=1.0, capacity=10.0)
    while budget.try_withdraw():
        pass  # spend the initial burst
    assert not budget.try_withdraw()
    clock.advance(3.0)
    granted = sum(budget.try_withdraw() for _ in range(10))
    assert granted == 3


def test_budget_ratio_zero_allows_only_the_floor() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.0, clock, min_per_s=0.0, capacity=2.0)
    for _ in range(100):
        budget.deposit()
    assert sum(budget.try_withdraw() for _ in range(100)) == 2


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after_ms("1500") == 1.5
    assert parse_retry_after_ms("x") is None
