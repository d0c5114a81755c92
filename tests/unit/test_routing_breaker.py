"""Circuit breaker: every transition, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from aimm_gateway.config import CircuitBreakerSettings
from aimm_gateway.routing import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, FakeClock, is_breaker_failure
from tests.unit.test_routing_support import features, model, models_of, new_state, route

DEFAULT = CircuitBreakerSettings()


def make(**kw: Any) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(CircuitBreakerSettings(**kw), clock), clock


def open_it(b: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(b.settings.failure_threshold):
        b.on_failure(clock.now)
    assert b.state == OPEN


@pytest.mark.parametrize(
    ("kind", "status", "trip_on_429", "expected"),
    [
        ("timeout", None, False, True),
        ("connection", None, False, True),
        ("timeout", 504, False, True),
        ("http", 500, False, True),
        ("http", 502, False, True),
        ("http", 503, False, True),
        ("http", None, False, True),  # no parsable response
        ("http", 400, False, False),
        ("http", 401, False, False),
        ("http", 404, False, False),
        ("http", 422, False, False),
        ("http", 429, False, False),
        ("http", 429, True, True),
        # the pipeline's own kind names: the status decides
        ("rate_limited", 429, False, False),
        ("rate_limited", 429, True, True),
        ("invalid_request", 400, False, False),
        ("overloaded", 503, False, True),
    ],
)
def test_is_breaker_failure(kind: str, status: int | None, trip_on_429: bool, expected: bool) -> None:
    assert is_breaker_failure(kind, status, CircuitBreakerSettings(trip_on_429=trip_on_429)) is expected


def test_opens_after_exactly_threshold_consecutive_failures() -> None:
    b, clock = make(failure_threshold=3, min_requests=1000)
    b.on_failure(clock.now)
    b.on_failure(clock.now)
    b.on_success(clock.now)  # resets the run
    b.on_failure(clock.now)
    b.on_failure(clock.now)
    assert b.state == CLOSED
    assert b.consecutive_failures == 2
    b.on_failure(clock.now)
    assert b.state == OPEN
    assert b.retry_at() == clock.now + DEFAULT.timeout_s


def test_opens_on_failure_rate_only_once_min_requests_reached() -> None:
    b, clock = make(failure_threshold=100, failure_rate=0.5, min_requests=10, window_s=60)
    # S F S F ... : never two failures in a row, 50% failure rate
    for i in range(9):
        (b.on_failure if i % 2 else b.on_success)(clock.now)
        clock.advance(1)
    assert b.state == CLOSED  # 4 of 9 failed, and fewer than min_requests anyway
    b.on_failure(clock.now)  # 10th request: 5 of 10 failed
    assert b.state == OPEN


def test_failure_rate_counts_only_the_window() -> None:
    b, clock = make(failure_threshold=100, failure_rate=0.5, min_requests=10, window_s=10)
    for _ in range(9):
        b.on_failure(clock.now)
    clock.advance(11.5)  # those failures left the window
    for _ in range(9):
        b.on_success(clock.now)
    b.on_failure(clock.now)
    assert b.state == CLOSED  # 1 of 10 in the window
    for _ in range(9):
        b.on_failure(clock.now)
    assert b.state == OPEN  # 10 of 19


def test_open_refuses_until_timeout_then_half_open() -> None:
    b, clock = make(failure_threshold=1, timeout_s=30)
    b.on_failure(clock.now)
    opened = clock.now
    assert not b.acquire(clock.now)
    clock.advance(29.999)
    assert b.state == OPEN
    assert not b.available(clock.now)
    assert not b.acquire(clock.now)
    assert b.retry_at() == opened + 30
    clock.advance(0.001)
    assert b.state == HALF_OPEN
    assert b.available(clock.now)


def test_half_open_admits_exactly_the_probe_count_and_closes_after_all_succeed() -> None:
    b, clock = make(failure_threshold=1, timeout_s=10, half_open_requests=2)
    b.on_failure(clock.now)
    clock.advance(10)
    assert b.acquire(clock.now)
    assert b.acquire(clock.now)
    assert not b.acquire(clock.now)  # both probe slots taken
    assert not b.available(clock.now)
    b.on_success(clock.now)
    assert b.state == HALF_OPEN  # one of two probes back
    assert not b.acquire(clock.now)  # the succeeded probe does not free a new slot
    b.on_success(clock.now)
    assert b.state == CLOSED
    assert b.acquire(clock.now)
    assert b.retry_at() is None


def test_probe_failure_reopens_with_a_fresh_timeout() -> None:
    b, clock = make(failure_threshold=1, timeout_s=10, half_open_requests=1)
    b.on_failure(clock.now)
    clock.advance(10)
    assert b.acquire(clock.now)
    clock.advance(3)  # the probe takes 3 s, then fails
    b.on_failure(clock.now)
    assert b.state == OPEN
    assert b.retry_at() == clock.now + 10
    assert b.opened == 2


def test_reopen_never_shortens_an_open_period() -> None:
    b, clock = make(failure_threshold=1, timeout_s=60)
    b.on_failure(clock.now)
    promised = b.retry_at()
    # A reload with a shorter timeout keeps the period already promised.
    b.configure(CircuitBreakerSettings(failure_threshold=1, timeout_s=5))
    clock.advance(10)
    assert b.state == OPEN
    assert b.retry_at() == promised
    # Late failures of requests sent before the trip neither extend nor shorten it.
    b.on_failure(clock.now)
    b.on_success(clock.now)  # and a late success does not close it
    assert b.state == OPEN
    assert b.retry_at() == promised
    # The next open period uses the new timeout, from the probe's failure.
    clock.now = promised
    assert b.acquire(clock.now)
    b.on_failure(clock.now)
    assert b.retry_at() == promised + 5


def test_cancelled_probe_frees_its_slot() -> None:
    b, clock = make(failure_threshold=1, timeout_s=10, half_open_requests=1)
    b.on_failure(clock.now)
    clock.advance(10)
    assert b.acquire(clock.now)
    assert not b.acquire(clock.now)
    b.on_release(clock.now)
    assert b.state == HALF_OPEN
    assert b.acquire(clock.now)


def test_lost_probe_is_reclaimed_after_timeout() -> None:
    b, clock = make(failure_threshold=1, timeout_s=10, half_open_requests=1)
    b.on_failure(clock.now)
    clock.advance(10)
    assert b.acquire(clock.now)
    clock.advance(9)
    assert not b.acquire(clock.now)
    assert b.retry_at() == clock.now + 1
    clock.advance(1)  # no verdict for a whole timeout: presumed lost
    assert b.available(clock.now)
    assert b.acquire(clock.now)


def test_client_errors_never_trip_through_router_state() -> None:
    state, _clock = new_state()
    for _ in range(100):
        assert state.acquire("m")
        state.on_start("m")
        state.on_failure("m", "http", 400, 0.1)
        state.on_failure("m", "invalid_request", 422, 0.1)
    assert state.breaker("m").state == CLOSED
    assert state.snapshot()["m"].in_flight == 0


def test_429_trips_only_when_configured() -> None:
    ms = models_of(
        model("a"), model("b", circuit_breaker=CircuitBreakerSettings(failure_threshold=3, trip_on_429=True))
    )
    r = route(["a", "b"], circuit_breaker=CircuitBreakerSettings(failure_threshold=3))
    state, _clock = new_state()
    state.plan(r, ms, features(), DEFAULT)  # applies each model's breaker settings
    for _ in range(10):
        state.on_failure("a", "rate_limited", 429, 0.1)
    for _ in range(3):
        state.on_failure("b", "rate_limited", 429, 0.1)
    assert state.breaker("a").state == CLOSED
    assert state.breaker("b").state == OPEN


def test_state_names_are_the_documented_strings() -> None:
    assert (CLOSED, OPEN, HALF_OPEN) == ("closed", "open", "half_open")
