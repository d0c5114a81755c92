"""One route's stages in order: run the `before` hooks, the `after` hooks in reverse, the chunk hooks.

A stage may declare (optional attributes, read once when the chain is built; the defaults are
the protocol's plain behaviour):

- `has_before = False` / `has_after = False`: that hook does nothing, so the chain never calls it
  (a no-op coroutine per request and stage was ~3 % of a plain request's CPU).
- `after_needs_scratch = True`: its `after` acts only on what its `before` left in
  `ctx.scratch[stage.name]`; a request for which `before` left nothing skips it (rate limits or
  budgets for a caller without any).
- `after_before_answer = True`: its `after` must finish before the answer is sent, because it
  rewrites the answer (the response guard) or settles shared state over the network that the
  caller's next request must already see (budgets, the cache on Redis). Every other `after` may
  run once the answer is handed to the transport (`StageRun.settle_after_answer`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import TracebackType

from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.errors import GatewayError
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, Stage

log = logging.getLogger("aimm.gateway")


class StageChain:
    """Immutable and shared by every request to one route of one runtime snapshot."""

    __slots__ = ("_afters", "_befores", "chunk_hooks", "split", "stages")

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        # Collected once: a stream whose stages need no chunk pays one falsy check per chunk.
        self.chunk_hooks: tuple[ChunkHook, ...] = tuple(s.chunk_hook for s in self.stages if s.chunk_hook is not None)
        self._befores = tuple((i, s) for i, s in enumerate(self.stages) if getattr(s, "has_before", True))
        # Per index: None (no `after`), else (stage, the scratch key its `after` needs or None).
        self._afters: tuple[tuple[Stage, str | None] | None, ...] = tuple(
            (s, s.name if getattr(s, "after_needs_scratch", False) else None) if getattr(s, "has_after", True) else None
            for s in self.stages
        )
        # `after` hooks of stages at index >= split run before the answer is sent (in reverse order,
        # so the order of all `after` hooks stays the same whichever side of the answer each runs).
        self.split = min(
            (i for i, s in enumerate(self.stages) if getattr(s, "after_before_answer", False)), default=len(self.stages)
        )

    async def before(self, ctx: RequestContext) -> tuple[int, ChatCompletion | None]:
        """Run the `before` hooks in order. Returns how many stages ran (their `after` is owed) and
        a short-circuit answer if one gave it. If one refuses, the ones before it are settled
        here (their `after` sees the refusal) and the refusal propagates."""
        ran = 0
        try:
            for index, stage in self._befores:
                ran = index  # the stages before this one have run (those without a `before` too)
                answer = await stage.before(ctx)
                if answer is not None:
                    return index + 1, answer
        except BaseException as exc:
            if ran:
                await self.after(ctx, refused(exc), ran)
            raise
        return len(self.stages), None

    async def after(self, ctx: RequestContext, outcome: Outcome, ran: int, start: int = 0) -> None:
        """The `after` hooks of stages `start` to `ran - 1`, in reverse order; a failing hook is logged."""
        afters = self._afters
        for index in range(ran - 1, start - 1, -1):
            entry = afters[index]
            if entry is None:
                continue
            stage, needs = entry
            if needs is not None and needs not in ctx.scratch:
                continue
            try:
                await stage.after(ctx, outcome)
            except Exception:
                log.exception("stage %s failed after request %s", stage.name, ctx.request_id)

    def run(self, ctx: RequestContext, outcome: Outcome) -> StageRun:
        """`async with chain.run(ctx, outcome) as run:` wraps one request's call in the stages."""
        return StageRun(self, ctx, outcome)

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        """Pass a streamed chunk through every chunk hook; None: a hook dropped it."""
        for hook in self.chunk_hooks:
            out = hook(ctx, chunk)
            if out is None:
                return None
            chunk = out
        return chunk


class StageRun:
    """One request's pass through a chain: `before` hooks on entry, `after` hooks on exit (or,
    once `handed_over`, when the stream or the answer's sender that took over settles it)."""

    __slots__ = ("answer", "chain", "ctx", "handed_over", "outcome", "ran")

    def __init__(self, chain: StageChain, ctx: RequestContext, outcome: Outcome) -> None:
        self.chain, self.ctx, self.outcome = chain, ctx, outcome
        self.ran = 0
        self.answer: ChatCompletion | None = None  # a stage's short-circuit answer (cache hit)
        self.handed_over = False

    async def __aenter__(self) -> StageRun:
        if self.chain.stages:  # a route without stages skips even the call
            self.ran, self.answer = await self.chain.before(self.ctx)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            ended = refused(exc)
            self.outcome.ok, self.outcome.error, self.outcome.status = False, ended.error, ended.status
            self.handed_over = False  # nothing took over: settle now
        if not self.handed_over:
            await self.settle()

    async def settle(self) -> None:
        """Every `after` hook owed, now."""
        self.outcome.latency_s = time.perf_counter() - self.ctx.started
        if self.ran:
            await self.chain.after(self.ctx, self.outcome, self.ran)

    async def settle_before_answer(self) -> None:
        """The `after` hooks that must finish before the answer is sent (see the module doc)."""
        self.outcome.latency_s = time.perf_counter() - self.ctx.started
        if self.ran > self.chain.split:
            await self.chain.after(self.ctx, self.outcome, self.ran, self.chain.split)

    async def settle_after_answer(self) -> None:
        """The other `after` hooks: run by the answer's sender once the answer is on its way."""
        ran = min(self.ran, self.chain.split)
        if ran:
            await self.chain.after(self.ctx, self.outcome, ran)


def refused(exc: BaseException) -> Outcome:
    """The outcome of a request that ended with `exc` before or during the call."""
    if isinstance(exc, GatewayError):
        return Outcome(ok=False, error=exc, status=exc.status)
    # Cancelled (client gone) or a local bug: 499 is nginx's "client closed request".
    return Outcome(ok=False, status=499 if not isinstance(exc, Exception) else 500)


EMPTY = StageChain(())
