"""What the usage store keeps: one row per client request, one per upstream attempt.

Money is stored as integer units of 1e-10 USD (state/units.py): exact in SQLite and PostgreSQL
alike, and SUM() stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REQUEST_COLUMNS = (
    "ts_ms", "request_id", "api", "key_name", "team", "namespace", "route", "requested", "model", "provider",
    "status", "error_kind", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
    "cost_units", "baseline_units", "latency_ms", "ttft_ms", "cache_hit", "attempts", "route_reason",
)  # fmt: skip
ATTEMPT_COLUMNS = ("ts_ms", "request_id", "seq", "model", "provider", "outcome", "status", "latency_ms", "hedge")


# Not frozen: a frozen dataclass sets every field through object.__setattr__, measurably slower
# for a row built on every request.
@dataclass(slots=True)
class AttemptRow:
    ts_ms: int
    request_id: str
    seq: int
    model: str
    provider: str
    outcome: str  # ok | error kind | cancelled
    status: int
    latency_ms: float
    hedge: bool = False

    def values(self) -> tuple[object, ...]:
        return (
            self.ts_ms, self.request_id, self.seq, self.model, self.provider, self.outcome, self.status,
            self.latency_ms, int(self.hedge),
        )  # fmt: skip


@dataclass(slots=True)
class UsageRow:
    ts_ms: int  # arrival, epoch milliseconds (UTC)
    request_id: str
    api: str = "openai"
    key_name: str | None = None
    team: str | None = None
    namespace: str | None = None
    route: str | None = None  # the route name when the client called one
    requested: str = ""
    model: str | None = None  # the model that answered (None: nothing answered)
    provider: str | None = None
    status: int = 200
    error_kind: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_units: int = 0
    baseline_units: int = 0  # what the route's most expensive target would have cost (savings)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    cache_hit: bool = False
    attempts: int = 0
    route_reason: str = ""
    attempt_rows: tuple[AttemptRow, ...] = field(default=())

    def values(self) -> tuple[object, ...]:
        return (
            self.ts_ms, self.request_id, self.api, self.key_name, self.team, self.namespace, self.route,
            self.requested, self.model, self.provider, self.status, self.error_kind, self.prompt_tokens,
            self.completion_tokens, self.cached_tokens, self.reasoning_tokens, self.cost_units,
            self.baseline_units, self.latency_ms, self.ttft_ms, int(self.cache_hit), self.attempts,
            self.route_reason,
        )  # fmt: skip
