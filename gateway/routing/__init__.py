"""Routing and resilience core: algorithms, circuit breakers, retries, hedging. No HTTP.

The request pipeline owns one RouterState for the life of the process (across reloads) and,
per request: `plan()` (or `plan_single()`), then for each attempt `acquire()` -> `on_start()`
-> exactly one of `on_success()` / `on_failure()` / `on_cancel()`; `on_success` may be split into
`on_answered()` (in-flight and breaker, at once) and `learn()` (statistics, batched per model).

Semantics worth knowing:
- Priority is a tier: algorithms pick among the best (lowest) priority that has an eligible
  target; the rest follow by (priority, algorithm score), then the route's `fallbacks`, then the
  request's `fallback_model`. A route target's weight/priority override the model's own only
  when set explicitly.
- Breaker settings: the model's `circuit_breaker`, else that of a route listing it, else the
  gateway default. A breaker is per model and shared by every route using the model.
- `Plan.retry_after_s` is set only when breakers are all that stand in the way; an empty plan
  without it means nothing can ever serve this request (see `Plan.skipped`).
"""

from aimm_gateway.retry_after import parse_retry_after, parse_retry_after_ms
from aimm_gateway.routing.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, is_breaker_failure
from aimm_gateway.routing.clock import Clock, FakeClock, SystemClock
from aimm_gateway.routing.datatypes import Plan, RequestFeatures, Skip, SkipKind, TargetSnapshot
from aimm_gateway.routing.retry import RetryBudget, RetryPolicy
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
    "Skip",
    "SkipKind",
    "SystemClock",
    "TargetSnapshot",
    "Tunables",
    "is_breaker_failure",
    "parse_retry_after",
    "parse_retry_after_ms",
]
