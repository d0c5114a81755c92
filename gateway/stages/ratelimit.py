"""Rate limits: global, per key (or JWT subject), per client IP and per model; requests/min,
tokens/min (prompt estimate reserved now, settled with real usage after) and concurrency.

All window counters of a request go to the state layer in one `hit_many` call (one Redis
round trip, atomic: all counted or none). Concurrency limits take a slot each and give it back
in `after`. Over a limit: 429 in OpenAI's shape with Retry-After and the x-ratelimit-* headers;
those headers are also on every admitted response. State unreachable: `limits.fail_mode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.config import LimitsSettings, LimitValues, ModelRateLimits
from aimm_gateway.errors import GatewayError, RateLimited, format_retry_after
from aimm_gateway.runtime import Runtime
from aimm_gateway.security.metrics import SecurityMetrics
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.state.base import StateStore, StateUnavailable, WindowCounter, WindowDecision

WINDOW_S = 60.0
_LABEL = {"requests": "requests per minute", "tokens": "tokens per minute"}
SLOT_TTL_S = 900.0  # a slot whose holder died frees itself after this long


@dataclass(frozen=True, slots=True)
class Level:
    name: str  # global | key | ip | model
    key: str
    rpm: int | None
    tpm: int | None
    concurrent: int | None


def duration(seconds: float) -> str:
    """OpenAI's reset format: `1m3s`, `12s`."""
    whole = max(1, math.ceil(seconds))
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def levels_for(ctx: RequestContext, limits: LimitsSettings, model: ModelRateLimits | None) -> list[Level]:
    out: list[Level] = []

    def add(name: str, key: str, lv: LimitValues | None, rpm: int | None = None, tpm: int | None = None) -> None:
        r = rpm if rpm is not None else (lv.requests_per_minute if lv else None)
        t = tpm if tpm is not None else (lv.tokens_per_minute if lv else None)
        c = lv.concurrent_requests if lv else None
        if r or t or c:
            out.append(Level(name, key, r, t, c))

    add("global", "g", limits.global_)
    ident = ctx.identity
    if ident is not None:
        own = ident.limits
        per_key = LimitValues(
            requests_per_minute=own.requests_per_minute or limits.per_key.requests_per_minute,
            tokens_per_minute=own.tokens_per_minute or limits.per_key.tokens_per_minute,
            concurrent_requests=own.concurrent_requests or limits.per_key.concurrent_requests,
        )
        add("key", f"k:{ident.source}:{ident.name}", per_key)
    if ctx.client_ip:
        add("ip", f"ip:{ctx.client_ip}", limits.per_ip)
    if model is not None:
        add("model", f"m:{ctx.requested}", None, model.requests_per_minute, model.tokens_per_minute)
    return out


def rate_headers(pairs: list[tuple[str, WindowCounter, WindowDecision]]) -> dict[str, str]:
    """x-ratelimit-* from the tightest counter of each kind (requests, tokens)."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        mine = [(c, d) for k, c, d in pairs if k == kind]
        if not mine:
            continue
        counter, decision = min(mine, key=lambda cd: (cd[1].remaining, -cd[1].reset_s))
        headers[f"x-ratelimit-limit-{kind}"] = str(counter.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(decision.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = duration(decision.reset_s)
    return headers


class RateLimit:
    name: ClassVar[str] = "ratelimit"
    chunk_hook: ChunkHook | None = None

    def __init__(
        self, state: StateStore, metrics: SecurityMetrics, limits: LimitsSettings, model: ModelRateLimits | None
    ):
        self._state = state
        self._metrics = metrics
        self._limits = limits
        self._model = model

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        levels = levels_for(ctx, self._limits, self._model)
        tokens = max(1, ctx.prompt_tokens)
        pairs: list[tuple[str, Level, WindowCounter]] = []
        for lv in levels:
            if lv.rpm:
                pairs.append(("requests", lv, WindowCounter(f"rl:{lv.key}:r", 1, lv.rpm, WINDOW_S)))
            if lv.tpm:
                pairs.append(("tokens", lv, WindowCounter(f"rl:{lv.key}:t", tokens, lv.tpm, WINDOW_S)))
        try:
            decisions = await self._state.hit_many([c for _, _, c in pairs]) if pairs else []
        except StateUnavailable:
            return self._unavailable()
        headers = rate_headers([(kind, c, d) for (kind, _, c), d in zip(pairs, decisions, strict=True)])
        refused = next(
            ((kind, lv, d) for (kind, lv, _), d in zip(pairs, decisions, strict=True) if not d.allowed), None
        )
        if refused is not None:
            kind, lv, d = refused
            raise self._limited(lv, kind, d.reset_s, headers)
        try:
            slots = await self._take_slots(levels)
        except StateUnavailable:
            return self._unavailable()
        if isinstance(slots, Level):
            await self._refund(pairs)
            raise self._limited(slots, "concurrent requests", 1.0, headers)
        ctx.response_headers.update(headers)
        ctx.scratch[self.name] = (slots, [c for kind, _, c in pairs if kind == "tokens"], tokens)
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        held = ctx.scratch.get(self.name)
        if held is None:
            return
        slots, token_counters, reserved = held
        try:
            await self._release(slots)
            actual = outcome.usage.prompt_tokens + outcome.usage.completion_tokens
            if token_counters and actual != reserved:
                for counter in token_counters:  # settle: the reservation becomes the real usage
                    await self._state.adjust(counter.key, actual - reserved, WINDOW_S)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("ratelimit_settle", self._limits.fail_mode).inc()

    async def _take_slots(self, levels: list[Level]) -> list[str] | Level:
        """Slot keys taken, or the level whose concurrency is full (nothing held then)."""
        taken: list[str] = []
        for lv in levels:
            if lv.concurrent:
                key = f"rl:{lv.key}:c"
                if not await self._state.acquire_slot(key, lv.concurrent, SLOT_TTL_S):
                    await self._release(taken)
                    return lv
                taken.append(key)
        return taken

    async def _release(self, slots: list[str] | Level) -> None:
        if isinstance(slots, list):
            for key in slots:
                await self._state.release_slot(key)

    async def _refund(self, pairs: list[tuple[str, Level, WindowCounter]]) -> None:
        for _, _, counter in pairs:
            await self._state.adjust(counter.key, -counter.amount, WINDOW_S)

    def _limited(self, lv: Level, kind: str, reset_s: float, headers: dict[str, str]) -> RateLimited:
        self._metrics.rate_limited.labels(lv.name).inc()
        scope = {"global": "the gateway", "key": "this key", "ip": "this client address", "model": "this model"}
        return RateLimited(
            f"Rate limit reached for {scope[lv.name]}: {_LABEL.get(kind, kind)}. Retry after {duration(reset_s)}.",
            headers={**headers, "retry-after": format_retry_after(reset_s)},
        )

    def _unavailable(self) -> None:
        mode = self._limits.fail_mode
        self._metrics.state_unavailable.labels("ratelimit", mode).inc()
        if mode == "closed":
            raise GatewayError(
                "rate limiter unavailable; refusing requests (limits.fail_mode: closed)",
                status=503,
                type="service_unavailable",
                code="rate_limiter_unavailable",
                headers={"retry-after": "1"},
            )
        return None


def build(rt: Runtime, name: str, deps: StageDeps) -> RateLimit | None:
    if deps.cost is None or deps.security is None:
        return None
    limits = rt.config.limits
    model = rt.models.get(name)
    model_limits = model.rate_limits if model is not None else None
    configured = any(
        lv.requests_per_minute or lv.tokens_per_minute or lv.concurrent_requests
        for lv in (limits.global_, limits.per_key, limits.per_ip)
    )
    keyed = any(k.limits != LimitValues() for k in rt.config.auth.api_keys) or rt.config.auth.key_store is not None
    if not (configured or keyed or model_limits is not None):
        return None  # a gateway without limits pays nothing for this stage
    return RateLimit(deps.cost.state, deps.security.metrics, limits, model_limits)
