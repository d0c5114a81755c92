"""Rate limits: global, per key (or JWT subject) and per client IP; requests/min, tokens/min
(prompt estimate reserved now, settled with real usage after) and concurrency. Per-model limits
are checked on each attempt's model in the attempt loop (`model_limits.ModelGate`, handed over in
`ctx.scratch`), so they hold for the model a route picked too.

All window counters and concurrency slots of a request go to the state layer in one `admit`
call before the upstream call (one Redis round trip, atomic: all counted and taken, or none);
`after` gives the slots back and settles the tokens in one `release` call, off the response
path (inline with the in-process store, which never waits). Over a limit: 429 in OpenAI's
shape with Retry-After and the x-ratelimit-* headers; those headers are also on every admitted
response. State unreachable: `limits.fail_mode`.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.config import LimitsSettings, ModelRateLimits
from aimm_gateway.errors import GatewayError, RateLimited, format_retry_after
from aimm_gateway.runtime import Runtime
from aimm_gateway.security.identity import Identity
from aimm_gateway.security.services import SecurityServices
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.stages.model_limits import GATE_KEY, WINDOW_S, ModelGate
from aimm_gateway.state.base import Admission, SlotRequest, StateStore, StateUnavailable, WindowCounter, WindowDecision
from aimm_gateway.state.memory import MemoryState

_LABEL = {"requests": "requests per minute", "tokens": "tokens per minute"}
SLOT_TTL_S = 900.0  # a slot whose holder died frees itself after this long


@dataclass(frozen=True, slots=True)
class Level:
    name: str  # global | key | ip | model
    key: str
    rpm: int | None
    tpm: int | None
    concurrent: int | None
    # Built once per level, not per request: the requests counter (its amount is always 1), the
    # tokens counter's key and the concurrency slot.
    requests: WindowCounter | None = field(init=False, compare=False)
    tokens_key: str = field(init=False, compare=False)
    slot: SlotRequest | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        counter = WindowCounter(self.key + ":r", 1, self.rpm, WINDOW_S) if self.rpm else None
        object.__setattr__(self, "requests", counter)
        object.__setattr__(self, "tokens_key", self.key + ":t")
        slot = SlotRequest(self.key + ":c", self.concurrent, SLOT_TTL_S) if self.concurrent else None
        object.__setattr__(self, "slot", slot)


def _format_reset(whole: int) -> str:
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


_RESETS = tuple(_format_reset(s) for s in range(121))  # every reset of a one-minute window, formatted once


def duration(seconds: float) -> str:
    """OpenAI's reset format: `1m3s`, `12s`."""
    whole = max(1, math.ceil(seconds))
    return _RESETS[whole] if whole < len(_RESETS) else _format_reset(whole)


def _level(name: str, key: str, rpm: int | None, tpm: int | None, concurrent: int | None) -> Level | None:
    return Level(name, key, rpm, tpm, concurrent) if (rpm or tpm or concurrent) else None


_REMEMBERED = 10_000  # key and IP levels kept per snapshot; past this the memo starts over


class Levels:
    """Which limits apply to a request; each level built once per route snapshot and reused."""

    def __init__(self, limits: LimitsSettings) -> None:
        g, self._k, self._ip = limits.global_, limits.per_key, limits.per_ip
        self._global = _level("global", "rl:g", g.requests_per_minute, g.tokens_per_minute, g.concurrent_requests)
        self._ip_on = bool(self._ip.requests_per_minute or self._ip.tokens_per_minute or self._ip.concurrent_requests)
        self._keys: dict[Identity, Level | None] = {}
        self._ips: dict[str, Level] = {}

    def _key_level(self, ident: Identity) -> Level | None:
        found = self._keys.get(ident, _MISSING)
        if found is _MISSING:
            own, k = ident.limits, self._k
            found = _level(
                "key",
                f"rl:k:{ident.source}:{ident.name}",
                own.requests_per_minute or k.requests_per_minute,
                own.tokens_per_minute or k.tokens_per_minute,
                own.concurrent_requests or k.concurrent_requests,
            )
            if len(self._keys) >= _REMEMBERED:
                self._keys.clear()
            self._keys[ident] = found
        return found if isinstance(found, Level) else None

    def _ip_level(self, address: str) -> Level:
        found = self._ips.get(address)
        if found is None:
            ip = self._ip
            found = Level(
                "ip", "rl:ip:" + address, ip.requests_per_minute, ip.tokens_per_minute, ip.concurrent_requests
            )
            if len(self._ips) >= _REMEMBERED:
                self._ips.clear()
            self._ips[address] = found
        return found

    def for_request(self, ctx: RequestContext) -> list[Level]:
        out = [self._global] if self._global is not None else []
        if ctx.identity is not None and (key := self._key_level(ctx.identity)) is not None:
            out.append(key)
        if self._ip_on and ctx.client_ip:
            out.append(self._ip_level(ctx.client_ip))
        return out


_MISSING: Any = object()
_NO_LIMITS = Admission((), None)


def rate_headers(pairs: list[tuple[str, WindowCounter, WindowDecision]]) -> dict[str, str]:
    """x-ratelimit-* from the tightest counter of each kind (requests, tokens)."""
    tightest: dict[str, tuple[WindowCounter, WindowDecision]] = {}
    for kind, counter, decision in pairs:
        held = tightest.get(kind)
        if held is None or decision.remaining < held[1].remaining:
            tightest[kind] = (counter, decision)
    headers: dict[str, str] = {}
    for kind, (counter, decision) in tightest.items():
        headers[_HEADER_NAMES[kind][0]] = str(counter.limit)
        headers[_HEADER_NAMES[kind][1]] = str(decision.remaining)
        headers[_HEADER_NAMES[kind][2]] = duration(decision.reset_s)
    return headers


_HEADER_NAMES = {
    kind: (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}")
    for kind in ("requests", "tokens")
}


class RateLimit:
    name: ClassVar[str] = "ratelimit"
    chunk_hook: ChunkHook | None = None
    after_needs_scratch: ClassVar[bool] = True  # nothing to settle unless `before` took something

    def __init__(
        self,
        state: StateStore,
        security: SecurityServices,
        limits: LimitsSettings,
        model_limits: dict[str, ModelRateLimits] | None = None,
    ):
        self._state = state
        self._metrics = security.metrics
        self._audit = security.audit
        self._limits = limits
        self._levels = Levels(limits)
        self._model_limits = model_limits or {}
        self._settling: set[asyncio.Task[None]] = set()  # strong references until each settle is done
        self._in_process = isinstance(state, MemoryState)  # its calls never wait: no need to defer them

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        levels = self._levels.for_request(ctx)
        if not levels and not self._model_limits:
            return None  # auth on, but no limit for this caller: nothing to count, settle or show
        tokens = max(1, ctx.prompt_tokens)
        pairs: list[tuple[str, Level, WindowCounter]] = []
        slots: list[SlotRequest] = []
        for lv in levels:
            if lv.requests is not None:
                pairs.append(("requests", lv, lv.requests))
            if lv.tpm:
                pairs.append(("tokens", lv, WindowCounter(lv.tokens_key, tokens, lv.tpm, WINDOW_S)))
            if lv.slot is not None:
                slots.append(lv.slot)
        try:  # every counter and slot of the request in one call: one Redis round trip (none if no limit)
            admission = await self._state.admit([c for _, _, c in pairs], slots) if pairs or slots else _NO_LIMITS
        except StateUnavailable:
            self._unavailable()
            return None
        shown: list[tuple[str, WindowCounter, WindowDecision]] = []
        refused: tuple[str, Level, WindowDecision] | None = None
        for (kind, lv, counter), decision in zip(pairs, admission.decisions, strict=True):
            shown.append((kind, counter, decision))
            if refused is None and not decision.allowed:
                refused = (kind, lv, decision)
        headers = rate_headers(shown)
        if refused is not None:
            raise self._limited(ctx, refused[1], refused[0], refused[2].reset_s, headers)
        if admission.full_slot is not None:
            full = next(lv for lv in levels if lv.slot is slots[admission.full_slot])
            raise self._limited(ctx, full, "concurrent requests", 1.0, headers)
        ctx.response_headers.update(headers)
        held = [s.key for s in slots]
        ctx.scratch[self.name] = (held, [c for kind, _, c in pairs if kind == "tokens"], tokens)
        if self._model_limits:
            ctx.scratch[GATE_KEY] = ModelGate(
                self._state, self._model_limits, shown, rate_headers, self._unavailable, self._model_limited
            )
        return None

    def _model_limited(self, ctx: RequestContext, model: str, kind: str) -> None:
        self._metrics.limited(kind)
        self._audit.record(
            "limit.hit",
            actor=ctx.identity,
            target=f"m:{model}",
            outcome="denied",
            request_id=ctx.request_id,
            limit=_LABEL.get(kind, kind),
        )

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        held = ctx.scratch.get(self.name)
        if held is None:
            return
        slots, token_counters, reserved = held
        gate: ModelGate | None = ctx.scratch.get(GATE_KEY)
        if gate is not None and outcome.model in gate.admitted:  # the model that answered settles too
            token_counters = [*token_counters, gate.admitted[outcome.model]]
        actual = outcome.usage.prompt_tokens + outcome.usage.completion_tokens
        deltas = [c.key for c in token_counters] if actual != reserved else []
        if not (slots or deltas):
            return
        if self._in_process:  # no round trip to save: settling now costs less than a task
            await self._settle(slots, deltas, actual - reserved)
            return
        # Off the response path: the client need not wait for the settle round trips.
        task = asyncio.get_running_loop().create_task(self._settle(slots, deltas, actual - reserved))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Wait for pending settles (tests, shutdown)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _settle(self, slots: list[str], token_keys: list[str], delta: int) -> None:
        try:  # slots given back and the reservation made the real usage, in one call
            await self._state.release(slots, token_keys, delta, WINDOW_S)
        except StateUnavailable:
            self._metrics.state_unavailable.labels("ratelimit_settle", self._limits.fail_mode).inc()

    def _limited(
        self, ctx: RequestContext, lv: Level, kind: str, reset_s: float, headers: dict[str, str]
    ) -> RateLimited:
        self._metrics.limited({"requests": "requests", "tokens": "tokens"}.get(kind, "concurrency"))
        self._audit.record(
            "limit.hit",
            actor=ctx.identity,
            target=lv.key.removeprefix("rl:"),
            outcome="denied",
            request_id=ctx.request_id,
            limit=_LABEL.get(kind, kind),
        )
        scope = {"global": "the gateway", "key": "this key", "ip": "this client address"}
        return RateLimited(
            f"Rate limit reached for {scope[lv.name]}: {_LABEL.get(kind, kind)}. Retry after {duration(reset_s)}.",
            headers={**headers, "retry-after": format_retry_after(reset_s)},
        )

    def _unavailable(self) -> None:
        """Fail open (count, admit) or closed (count, 503), per limits.fail_mode."""
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


def build(rt: Runtime, name: str, deps: StageDeps) -> RateLimit | None:
    if deps.cost is None or deps.security is None:
        return None
    limits = rt.config.limits
    # Every model's limits, not only the named one's: a route may pick any model.
    model_limits = {m.name: m.rate_limits for m in rt.models.values() if m.rate_limits is not None}
    configured = any(
        lv.requests_per_minute or lv.tokens_per_minute or lv.concurrent_requests
        for lv in (limits.global_, limits.per_key, limits.per_ip)
    )
    keyed = rt.config.auth.enabled  # any key (store keys too) may carry its own limits
    if not (configured or keyed or model_limits):
        return None  # a gateway without limits pays nothing for this stage
    return RateLimit(deps.cost.state, deps.security, limits, model_limits)
