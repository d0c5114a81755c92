"""One route's stages in order: run the `before` hooks, the `after` hooks in reverse, the chunk hooks."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        """Pass a streamed chunk through every chunk hook; None: a hook dropped it."""
        for hook in self.chunk_hooks:
            out = hook(ctx, chunk)
            if out is None:
                return None
            chunk = out
        return chunk


def refused(exc: BaseException) -> Outcome:
    """The outcome of a request that ended with `exc` before or during the call."""
    if isinstance(exc, GatewayError):
        return Outcome(ok=False, error=exc, status=exc.status)
    # Cancelled (client gone) or a local bug: 499 is nginx's "client closed request".
    return Outcome(ok=False, status=499 if not isinstance(exc, Exception) else 500)


EMPTY = StageChain(())
