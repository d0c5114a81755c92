"""Per-model rate limits (`models[].rate_limits`, the AIModel CRD's `rateLimits`), checked on the
model an attempt is about to call, whoever chose it: the client, a route, a fallback or a hedge.

A model's limit is what the upstream accepts from this gateway, so it counts what is sent to
that model: each attempt takes one request and the prompt estimate (tokens) from the model's
window before it is sent. A model over its limit is skipped, as an open circuit is, and the
attempt loop tries the next target (no retry budget or backoff spent: nothing was sent). When
every target was skipped for its limit, the client gets 429 with the soonest reset. The
winning model's token reservation is settled with the real usage in the rate-limit stage's
`after`. The rate-limit stage puts one `ModelGate` per request in `ctx.scratch[GATE_KEY]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aimm_gateway.config import ModelRateLimits
from aimm_gateway.errors import RateLimited, format_retry_after
from aimm_gateway.stages.base import RequestContext
from aimm_gateway.state.base import StateStore, StateUnavailable, WindowCounter, WindowDecision

GATE_KEY = "ratelimit.model_gate"
WINDOW_S = 60.0

Shown = list[tuple[str, WindowCounter, WindowDecision]]  # (kind, counter, decision) for the headers


@dataclass(frozen=True, slots=True)
class Refusal:
    model: str
    kind: str  # requests | tokens
    reset_s: float
    shown: Shown


@dataclass
class ModelGate:
    state: StateStore
    limits: dict[str, ModelRateLimits]
    shown: Shown  # the request's other levels (global, key, ip), for the tightest-limit headers
    headers: Callable[[Shown], dict[str, str]]
    on_unavailable: Callable[[], None]  # the stage's fail mode: returns (open) or raises 503 (closed)
    on_limited: Callable[[RequestContext, str, str], None]  # metrics + audit of a refusal
    refusals: list[Refusal] = field(default_factory=list)
    admitted: dict[str, WindowCounter] = field(default_factory=dict)  # model -> its tokens counter

    async def admit(self, ctx: RequestContext, model: str) -> bool:
        """Count this attempt against the model's limits; False (nothing counted) when over one."""
        limit = self.limits.get(model)
        if limit is None:
            return True
        if any(r.model == model for r in self.refusals):
            return False  # asked once per request: a retry on the same model can't fit either
        pairs = self._counters(model, limit, max(1, ctx.prompt_tokens))
        try:
            decisions = await self.state.hit_many([c for _, c in pairs])
        except StateUnavailable:
            self.on_unavailable()
            return True
        shown = self.shown + [(kind, c, d) for (kind, c), d in zip(pairs, decisions, strict=True)]
        refused = next(((kind, d) for (kind, _), d in zip(pairs, decisions, strict=True) if not d.allowed), None)
        if refused is not None:
            self.refusals.append(Refusal(model, refused[0], refused[1].reset_s, shown))
            self.on_limited(ctx, model, refused[0])
            return False
        ctx.response_headers.update(self.headers(shown))
        tokens = next((c for kind, c in pairs if kind == "tokens"), None)
        if tokens is not None:
            self.admitted[model] = tokens
        return True

    async def refund(self, ctx: RequestContext, model: str) -> None:
        """Give back what `admit` took when the attempt was not sent after all (breaker refused)."""
        limit = self.limits.get(model)
        if limit is None:
            return
        self.admitted.pop(model, None)
        try:
            for _, counter in self._counters(model, limit, max(1, ctx.prompt_tokens)):
                await self.state.adjust(counter.key, -counter.amount, WINDOW_S)
        except StateUnavailable:
            self.on_unavailable()

    def limited(self) -> RateLimited:
        """The 429 when every target was skipped for its limit: the soonest reset wins."""
        soonest = min(self.refusals, key=lambda r: r.reset_s)
        names = ", ".join(sorted({r.model for r in self.refusals}))
        what = "requests per minute" if soonest.kind == "requests" else "tokens per minute"
        return RateLimited(
            f"Rate limit reached for model {names}: {what}. Retry after {format_retry_after(soonest.reset_s)} s.",
            headers={**self.headers(soonest.shown), "retry-after": format_retry_after(soonest.reset_s)},
        )

    @staticmethod
    def _counters(model: str, limit: ModelRateLimits, tokens: int) -> list[tuple[str, WindowCounter]]:
        key = f"rl:m:{model}"
        out: list[tuple[str, WindowCounter]] = []
        if limit.requests_per_minute:
            out.append(("requests", WindowCounter(key + ":r", 1, limit.requests_per_minute, WINDOW_S)))
        if limit.tokens_per_minute:
            out.append(("tokens", WindowCounter(key + ":t", tokens, limit.tokens_per_minute, WINDOW_S)))
        return out
