"""One route's stages in order: run the `before` hooks, the `after` hooks in reverse, the chunk hooks."""

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

    __slots__ = ("chunk_hooks", "stages")

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        # Collected once: a stream whose stages need no chunk pays one falsy check per chunk.
        self.chunk_hooks: tuple[ChunkHook, ...] = tuple(s.chunk_hook for s in self.stages if s.chunk_hook is not None)

    async def before(self, ctx: RequestContext) -> tuple[int, ChatCompletion | None]:
        """Run the `before` hooks in order. Returns how many ran (their `after` is owed) and a
        short-circuit answer if one gave it. If one refuses, the ones before it are settled
        here (their `after` sees the refusal) and the refusal propagates."""
        ran = 0
        try:
            for stage in self.stages:
                answer = await stage.before(ctx)
                ran += 1
                if answer is not None:
                    return ran, answer
        except BaseException as exc:
            if ran:
                await self.after(ctx, refused(exc), ran)
            raise
        return ran, None

    async def after(self, ctx: RequestContext, outcome: Outcome, ran: int) -> None:
        """The `after` hooks of the first `ran` stages, in reverse order; a failing hook is logged."""
        for stage in reversed(self.stages[:ran]):
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
    once `handed_over`, when the stream that took over calls `settle`)."""

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
        self.outcome.latency_s = time.perf_counter() - self.ctx.started
        if self.ran:
            await self.chain.after(self.ctx, self.outcome, self.ran)


def refused(exc: BaseException) -> Outcome:
    """The outcome of a request that ended with `exc` before or during the call."""
    if isinstance(exc, GatewayError):
        return Outcome(ok=False, error=exc, status=exc.status)
    # Cancelled (client gone) or a local bug: 499 is nginx's "client closed request".
    return Outcome(ok=False, status=499 if not isinstance(exc, Exception) else 500)


EMPTY = StageChain(())
