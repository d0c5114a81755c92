"""Values that cross the routing boundary: what a request needs, what routing decided."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """What routing must know about one request to choose where it can go."""

    prompt_tokens: int = 0
    max_output_tokens: int | None = None  # the client's cap; None = the model decides
    required_capabilities: frozenset[str] = frozenset()  # e.g. {"tools", "vision", "json"}
    max_cost_usd: Decimal | None = None  # estimated cost ceiling for this request
    fallback_model: str | None = None  # the request's own last resort


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered models to try. `reason` is short, ASCII and header-safe.

    `retry_after_s` is set only when `attempts` is empty *because of breakers* (answer 503 with
    Retry-After); when it is None and `attempts` is empty nothing will ever fit this request
    (context too long, capability missing, over max cost, all disabled): `skipped` says why.
    """

    attempts: tuple[str, ...]
    reason: str
    retry_after_s: float | None = None
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """One model's live routing state, for /api/v1/models, metrics and the operator."""

    model: str
    circuit_state: str  # "closed" | "open" | "half_open"
    retry_at: float | None  # monotonic time it admits requests again, if it does not now
    in_flight: int
    latency_ewma_s: float | None
    latency_p95_s: float | None
    success_rate: float  # time-decayed
    successes: int
    failures: int
    consecutive_failures: int
    times_opened: int
    adaptive_mean: float  # Thompson posterior mean of the reward
