"""The stage protocol: one small object per concern on the request path.

Order (assembled per route from the runtime snapshot; a route pays only for stages it uses):

    before:  authenticate → rate limit → guard request → reserve budget → cache lookup
    call:    route → attempt / retry / fallback / hedge → provider → upstream   (pipeline.py)
    after:   (reverse order) cache store → settle budget → guard response → rate-limit settle
             → usage record → metrics / traces / access log

A stage's `before` may raise a GatewayError (refuse the request), may set fields on the
context (identity, max cost, downgrade target, response headers), or may return a complete
answer to short-circuit the call (a cache hit). `after` runs for every stage whose `before`
ran, in reverse order, whatever the outcome (success, error, client gone). Streams: a stage
that needs each chunk sets `chunk_hook`; stages that don't leave it None and cost nothing
per chunk.

A plain answer is sent before the `after` hooks run, unless a stage says its `after` must come
first (`after_before_answer`: it rewrites the answer, or settles shared state over the network);
the others run in the same task right after the answer is handed to the transport, before
anything else runs on the event loop. Optional declarations a stage may make (no-op hooks the
chain skips, hooks gated on the stage's scratch) are listed in chain.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from aimm_gateway.canonical import ChatChunk, ChatCompletion, ChatRequest, Usage
from aimm_gateway.errors import GatewayError
from aimm_gateway.security.identity import Identity
from aimm_gateway.telemetry.parts import Telemetry

if TYPE_CHECKING:
    from aimm_gateway.budget.services import CostServices
    from aimm_gateway.live.hub import LiveHub
    from aimm_gateway.metrics import GatewayMetrics
    from aimm_gateway.runtime import Runtime
    from aimm_gateway.security.services import SecurityServices
    from aimm_gateway.stats import LiveStats

Api = Literal["openai", "anthropic", "native", "embeddings"]


@dataclass(slots=True)
class AttemptRecord:
    """One upstream attempt and how it ended (usage store, traces, access log)."""

    model: str
    provider: str
    outcome: str  # pending | ok | error kind (timeout, rate_limit, http, content_filter, ...) | cancelled
    status: int = 0
    latency_s: float = 0.0
    hedge: bool = False
    cost: Decimal = Decimal(0)  # what this attempt cost (a refused or losing answer still costs)
    started: float = 0.0  # perf_counter when sent


@dataclass(slots=True)
class RequestContext:
    """Everything the stages and the attempt loop share for one client request."""

    request_id: str
    runtime: Runtime
    api: Api = "openai"
    identity: Identity | None = None
    client_ip: str = ""
    requested: str = ""  # the model or route name the client asked for
    body: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # request headers, lower-case names (Cache-Control, ...)
    stream: bool = False
    request: ChatRequest | None = None  # the validated chat request (None for embeddings)
    prompt_tokens: int = 0  # estimate, before the call
    max_output_tokens: int | None = None
    fallback_model: str | None = None
    max_cost_usd: Decimal | None = None  # set by the budget stage; routing filters by it
    downgrade_to: str | None = None  # set by the budget stage (action: downgrade)
    response_headers: dict[str, str] = field(default_factory=dict)  # stages add (rate-limit headers, ...)
    scratch: dict[str, Any] = field(default_factory=dict)  # per-stage private state, keyed by stage name
    started: float = 0.0  # perf_counter at arrival

    @property
    def key_name(self) -> str | None:
        return self.identity.name if self.identity is not None else None


@dataclass(slots=True)
class Outcome:
    """How the request ended; the `after` hooks read it."""

    ok: bool
    model: str | None = None  # the model that answered
    provider: str | None = None
    route_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)  # the answering attempt's cost; `spent` adds every attempt's
    latency_s: float = 0.0
    ttft_s: float | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    cache_hit: bool = False
    error: GatewayError | None = None
    status: int = 200
    response: ChatCompletion | None = None  # non-streamed answer (cache store, response guard)
    chunks: list[ChatChunk] | None = None  # streamed chunks, kept only when a stage asked (cache)

    @property
    def spent(self) -> Decimal:
        """What the request cost upstream in total: every attempt that was billed."""
        return sum((a.cost for a in self.attempts), Decimal(0))


ChunkHook = Callable[[RequestContext, ChatChunk], ChatChunk | None]  # None: drop the chunk


class Stage(Protocol):
    name: ClassVar[str]
    chunk_hook: ChunkHook | None  # None unless the stage must see every streamed chunk

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        """Refuse (raise GatewayError), annotate ctx, or short-circuit with a full answer."""
        ...

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        """Settle, record, store; must not raise (log and count instead)."""
        ...


@dataclass(frozen=True, slots=True)
class StageDeps:
    """The long-lived parts (one per process, across reloads) a stage factory may hand its stage.
    Add a field here when a stage needs a new one (state store, usage store, ...)."""

    metrics: GatewayMetrics
    stats: LiveStats
    cost: CostServices | None = None  # state, usage store, budgets, cache (None: stages that need them are left out)
    telemetry: Telemetry = field(default_factory=Telemetry)  # access log, tracer (per process)
    security: SecurityServices | None = None  # audit trail, security metrics, compiled detectors
    live: LiveHub | None = None  # the live feed's hub (the `requests` channel); None: no tail


# Builds a route's stage from the runtime snapshot; None when the route doesn't need it (pays nothing).
StageFactory = Callable[["Runtime", str, StageDeps], Stage | None]
