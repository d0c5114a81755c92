"""Routing and resilience core: algorithms, circuit breakers, retries, hedging. No HTTP.

The request pipeline owns one RouterState for the life of the process and, per request:
`plan()` (or `plan_single()`), then for each attempt `acquire()` -> `on_start()` -> one of
`on_success()` / `on_failure()` / `on_cancel()`.
"""

from aimm_gateway.routing.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, is_breaker_failure
from aimm_gateway.routing.clock import Clock, FakeClock, SystemClock
from aimm_gateway.routing.datatypes import Plan, RequestFeatures, TargetSnapshot
from aimm_gateway.routing.retry import RetryBudget, RetryPolicy, parse_retry_after, parse_retry_after_ms
from aimm_gateway.routing.state import RouterState
from aimm_gateway.routing.stats import Tunables

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "CircuitBreaker",
    "Clock",
    "FakeClock",
    "Plan",
    "RequestFeatures",
    "RetryBudget",
    "RetryPolicy",
    "RouterState",
    "SystemClock",
    "TargetSnapshot",
    "Tunables",
    "is_breaker_failure",
    "parse_retry_after",
    "parse_retry_after_ms",
]
