"""The request path: stages around one attempt loop.

    stages.before (in order) → plan → attempt loop (retries, fallbacks, hedges) → stages.after

Handlers build a `RequestContext` and call `complete` / `stream` / `embed`. The stages (auth,
limits, guards, budgets, cache, telemetry) are assembled per route in `aimm_gateway.stages`;
planning, the plain/stream difference (openers) and per-attempt bookkeeping live in
`aimm_gateway.attempts`; every routing decision in `aimm_gateway.routing`. This module keeps the
order and the one attempt loop that plain, streamed and hedged calls share.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aimm_gateway.attempts.committed import Committed
from aimm_gateway.attempts.ledger import Ledger
from aimm_gateway.attempts.openers import Opener, PlainOpener, RawStreamOpener, StreamOpener, Won, aclose
from aimm_gateway.attempts.planning import Attempting, Planner, Sleep
from aimm_gateway.attempts.relay import ByteRelay, Ending
from aimm_gateway.backlog import Backlog
from aimm_gateway.canonical import ChatChunk, ChatCompletion, EmbeddingRequest, Usage
from aimm_gateway.errors import InvalidRequest, ModelNotFound, NoUsableModel, UpstreamError
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.providers.base import EmbeddingCall
from aimm_gateway.routing import RouterState
from aimm_gateway.security.scrub import scrub_error
from aimm_gateway.stages.assembly import StageAssembly
from aimm_gateway.stages.base import Outcome, RequestContext, StageDeps
from aimm_gateway.stages.chain import StageChain, StageRun
from aimm_gateway.stages.model_limits import GATE_KEY, ModelGate
from aimm_gateway.stats import LiveStats
from aimm_gateway.telemetry import TRACE_KEY
from aimm_gateway.tokens import estimate_prompt_tokens

if TYPE_CHECKING:
    from aimm_gateway.telemetry.tracing import RequestTrace

log = logging.getLogger("aimm.gateway")


@dataclass(slots=True)
class StreamResult:
    outcome: Outcome  # model, provider, route reason now; usage, cost, status when the stream ends
    chunks: Committed  # first chunk included; raises GatewayError mid-stream

    async def aclose(self) -> None:
        """End the stream now (a no-op once it has ended): the upstream closed, settled, the
        `after` hooks run, also when no chunk was ever asked for. The response closes it."""
        await self.chunks.aclose()


@dataclass(slots=True)
class Answered:
    """A plain answer ready to send, and what must run once it is on its way."""

    outcome: Outcome
    after: Callable[[], Awaitable[None]] | None  # the rest of the `after` hooks; None: nothing


@dataclass(slots=True)
class PassThrough:
    """A stream relayed as the upstream's bytes (OpenAI chunk JSON): `stream_passthrough`."""

    outcome: Outcome  # as StreamResult's
    relay: ByteRelay


class ChatPipeline:
    def __init__(
        self,
        router: RouterState,
        metrics: GatewayMetrics,
        stats: LiveStats,
        sleep: Sleep = asyncio.sleep,
        stages: StageAssembly | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        # The requests in here are counted on it (`in_flight`): its rule for holding bookkeeping.
        self._backlog = backlog = backlog if backlog is not None else Backlog()
        self._ledger = Ledger(router, metrics, stats, backlog)
        self._planner = Planner(router, sleep)
        self._stages = stages if stages is not None else StageAssembly(StageDeps(metrics, stats))
        self._plain = PlainOpener(self._ledger)
        self._streamer = StreamOpener(self._ledger)
        self._raw = RawStreamOpener(self._ledger)
        self._sleep = sleep

    # -- the order: stages before, the call, stages after ------------------------------------

    def _enter(self, ctx: RequestContext) -> StageChain:
        """Fill what stages and routing read before anything runs; the route's stage chain."""
        req = ctx.request
        if req is not None:
            ctx.requested = ctx.requested or req.model or ctx.runtime.config.server.default_model or ""
            ctx.prompt_tokens = estimate_prompt_tokens(req)
            ctx.max_output_tokens = req.output_limit
        if not ctx.started:
            ctx.started = time.perf_counter()
        return self._stages.chain(ctx)

    async def complete(self, ctx: RequestContext) -> Outcome:
        """A non-streamed answer: `outcome.response` holds it, every `after` hook has run and the
        attempts are settled (routing statistics, per-model series, live stats)."""
        answered = await self.answer(ctx)
        self._ledger.flush()
        if answered.after is not None:
            await answered.after()
        return answered.outcome

    async def answer(self, ctx: RequestContext) -> Answered:
        """`complete` for a caller that sends the answer first: the `after` hooks that need not
        come first are left in `Answered.after`, which the caller must await once the answer is
        handed to the transport (api/common.JsonBytes does), before its task yields. The
        attempts' statistics settle through the backlog (attempts/ledger.py); the request counts
        as in flight until its answer is made."""
        backlog = self._backlog
        backlog.in_flight += 1
        try:
            outcome = Outcome(ok=False)
            chain = self._enter(ctx)
            if not chain.stages:  # nothing to run around the call: skip the wrapper's awaits
                await self._complete(ctx, outcome)
                outcome.latency_s = time.perf_counter() - ctx.started
                return Answered(outcome, None)
            async with chain.run(ctx, outcome) as run:
                if run.answer is not None:
                    _short_circuit(outcome, run.answer)
                else:
                    await self._complete(ctx, outcome)
                run.handed_over = True  # answered: the sender settles (a failure settles on exit)
            await run.settle_before_answer()
            return Answered(outcome, run.settle_after_answer)
        finally:
            backlog.in_flight -= 1

    async def _complete(self, ctx: RequestContext, outcome: Outcome) -> None:
        assert ctx.request is not None
        r = await self._planner.prepare(ctx, ctx.request, outcome)
        r.budget.deposit()
        won = await self._attempts(r, self._plain)
        _answered(r, won, self._ledger.metrics)
        outcome.ok, outcome.response, outcome.cost = True, won.response, won.record.cost
        outcome.usage = won.usage or outcome.usage

    async def stream(self, ctx: RequestContext) -> StreamResult:
        """Fail over freely until the first chunk arrives; after that the stream is committed
        and settles (usage, cost, `after` hooks) when it ends."""
        result = await self._stream(ctx, raw=False)
        assert isinstance(result, StreamResult)
        return result

    async def stream_passthrough(self, ctx: RequestContext) -> StreamResult | PassThrough:
        """`stream` for a client that speaks OpenAI SSE: when the route has no chunk hooks and the
        winning upstream speaks OpenAI SSE too, its bytes are relayed (a PassThrough)."""
        return await self._stream(ctx, raw=True)

    async def _stream(self, ctx: RequestContext, raw: bool) -> StreamResult | PassThrough:
        # In flight until the stream settles (`_settle_stream`, `_settle_replay`), or until it fails here.
        self._backlog.in_flight += 1
        try:
            outcome = Outcome(ok=False)
            chain = self._enter(ctx)
            async with chain.run(ctx, outcome) as run:
                result: StreamResult | PassThrough
                if run.answer is not None:
                    _short_circuit(outcome, run.answer)
                    replay = Committed(self._replay(run, run.answer), partial(self._settle_replay, run))
                    result = StreamResult(outcome, replay)
                else:
                    assert ctx.request is not None
                    r = await self._planner.prepare(ctx, ctx.request, outcome)
                    r.budget.deposit()
                    opener = self._raw if raw and not chain.chunk_hooks else self._streamer
                    won = await self._attempts(r, opener)
                    _answered(r, won, None)
                    outcome.ttft_s = time.perf_counter() - ctx.started
                    result = self._committed(r, won, run)
                run.handed_over = True
        except BaseException:
            self._backlog.in_flight -= 1
            raise
        return result

    def _committed(self, r: Attempting, won: Won, run: StageRun) -> StreamResult | PassThrough:
        if won.raw is None:
            return StreamResult(r.outcome, Committed(self._follow(r, won, run), partial(self._abandon, r, won, run)))
        assert won.first_raw is not None
        first, won.first_raw = won.first_raw, None  # not kept for the stream's life
        gap = self._ledger.metrics.series(won.record.model, won.record.provider).inter_chunk.observe
        # What settling needs is fixed now; the request, its body and the routing state are not
        # read again (`after` hooks read the outcome): not kept for the stream's life.
        fallback_route = _fallback_route(r, won)
        outcome = r.outcome
        r.ctx.request, r.ctx.body = None, {}
        # A partial, not a closure (a function, its closure tuple and a cell per variable): fewer
        # objects alive for the stream's life for the cyclic collector to walk.
        finish = partial(self._settle_stream, outcome, won, run, fallback_route)
        return PassThrough(outcome, ByteRelay(won.raw, first, gap, finish))

    async def _follow(self, r: Attempting, won: Won, run: StageRun) -> AsyncGenerator[ChatChunk, None]:
        """The committed stream: chunk hooks, then settle and the `after` hooks when it ends."""
        assert won.upstream is not None and won.first is not None
        ctx, upstream, chain = r.ctx, won.upstream, run.chain
        hooks = chain.chunk_hooks
        usage = Usage()
        how: Ending = "cancelled"  # until proven otherwise: the client may go away mid-stream
        failure: UpstreamError | None = None
        gap = self._ledger.metrics.series(won.record.model, won.record.provider).inter_chunk.observe
        try:
            chunk: ChatChunk | None = won.first
            won.first = None  # not kept for the stream's life: the relay holds only the current chunk
            last = time.perf_counter()
            while chunk is not None:
                if chunk.get("usage"):
                    usage = Usage.from_openai(chunk["usage"])
                out = chain.on_chunk(ctx, chunk) if hooks else chunk
                if out is not None:
                    yield out
                chunk = await anext(upstream, None)
                if chunk is not None:
                    now = time.perf_counter()
                    gap(now - last)
                    last = now
            how = "ok"
        except UpstreamError as exc:
            how, failure = "failed", exc
            raise
        finally:
            await self._end_follow(r, won, run, how, usage, failure)

    async def _end_follow(
        self, r: Attempting, won: Won, run: StageRun, how: Ending, usage: Usage, failure: UpstreamError | None
    ) -> None:
        assert won.upstream is not None
        await aclose(won.upstream)
        await self._settle_stream(r.outcome, won, run, _fallback_route(r, won), how, usage, failure)

    async def _abandon(self, r: Attempting, won: Won, run: StageRun) -> None:
        """A committed stream closed before its first chunk was asked for: the client left."""
        await self._end_follow(r, won, run, "cancelled", Usage(), None)

    async def _settle_stream(
        self,
        outcome: Outcome,
        won: Won,
        run: StageRun,
        fallback_route: str | None,
        how: Ending,
        usage: Usage,
        failure: UpstreamError | None,
    ) -> None:
        """A committed stream ended: the attempt's verdict, then the stages' `after` hooks; no
        longer in flight."""
        try:
            if how == "ok":
                outcome.ok, outcome.usage = True, usage
                outcome.cost = self._ledger.succeeded(won.record, won.model, usage, won.ttft)
                if fallback_route is not None:
                    self._ledger.metrics.fallbacks.labels(fallback_route).inc()
            elif how == "failed" and failure is not None:
                self._ledger.failed(won.record, failure)
                outcome.error, outcome.status = failure, failure.status
            else:
                self._ledger.cancelled(won.record)
                outcome.status = 499
            await run.settle()
        finally:
            self._backlog.in_flight -= 1

    async def _replay(self, run: StageRun, answer: ChatCompletion) -> AsyncGenerator[ChatChunk, None]:
        """A short-circuit answer (cache hit) as a one-chunk stream."""
        try:
            yield _as_chunk(answer)
        finally:
            await self._settle_replay(run)

    async def _settle_replay(self, run: StageRun) -> None:
        try:
            await run.settle()
        finally:
            self._backlog.in_flight -= 1

    async def embed(self, ctx: RequestContext, req: EmbeddingRequest) -> tuple[dict[str, Any], Outcome]:
        """Embeddings: one attempt at the named model (no routes, no retries), same stages."""
        ctx.requested = ctx.requested or req.model or ctx.runtime.config.server.default_model or ""
        outcome = Outcome(ok=False, route_reason="requested model")
        self._backlog.in_flight += 1
        try:
            async with self._enter(ctx).run(ctx, outcome) as run:
                if run.answer is not None:
                    _short_circuit(outcome, run.answer)
                    return run.answer, outcome
                return await self._embed(ctx, req, outcome), outcome
        finally:
            self._backlog.in_flight -= 1

    async def _embed(self, ctx: RequestContext, req: EmbeddingRequest, outcome: Outcome) -> dict[str, Any]:
        rt, name = ctx.runtime, ctx.requested
        if name in rt.routes:
            raise InvalidRequest(f"model: {name!r} is a chat route; embeddings need a model name", param="model")
        model = rt.models.get(name)
        if model is None:
            raise ModelNotFound(f"The model {name!r} does not exist", param="model")
        if not model.enabled or model.name in rt.unusable:
            raise NoUsableModel(f"model {model.name!r} is not available")
        record = self._ledger.start(outcome, name, model, gate=False)
        assert record is not None
        trace: RequestTrace | None = ctx.scratch.get(TRACE_KEY)  # None unless tracing is on
        headers = trace.attempt(record, model.upstream_model) if trace is not None else {}
        call = EmbeddingCall(model, req, ctx.body, rt.api_key_values.get(name), model.timeouts, ctx.request_id, headers)
        try:
            response = await rt.providers[name].embed(call)
        except UpstreamError as exc:
            self._ledger.failed(record, exc)
            raise
        except BaseException:
            self._ledger.cancelled(record)
            raise
        usage = Usage.of_embeddings(response)
        outcome.cost = self._ledger.succeeded(record, model, usage, None)
        outcome.ok, outcome.model, outcome.provider, outcome.usage = True, name, model.provider, usage
        return response

    # -- the attempt loop (plain, streamed and hedged calls alike) ---------------------------------

    async def _attempts(self, r: Attempting, opener: Opener) -> Won:
        """Walk the attempt order until an attempt wins; hedge first if the route asks."""
        start = 0
        filtered: Won | None = None  # a refused answer, served only if nothing better comes
        if r.route is not None and r.route.hedging.enabled and len(set(r.order)) > 1:
            won, start = await self._hedged(r, opener)
            if won is not None:
                return won
        skipped = False  # the previous entry was over its model's limit: nothing was sent, no retry
        for index in range(start, len(r.order)):
            name = r.order[index]
            if name in r.refused_by:
                continue
            if index > 0 and not skipped and not await self._before_retry(r, index, name):
                break
            over = r.over_limit
            try:
                won = await self._one(r, name, opener)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                if exc.kind == "upstream_auth":
                    r.refused_by.add(name)  # our key was refused: asking again can't help; others may
                continue
            skipped = r.over_limit > over
            if won is None:
                continue
            if opener.refused(won) and any(n != name for n in r.order[index + 1 :]):
                # Content-policy fallback: another model may answer what this one refused.
                filtered = filtered or won
                r.refused_by.add(name)
                r.last_error = UpstreamError("content filtered", kind="content_filter", status=400)
                r.last_model = name
                continue
            return won
        if filtered is not None:
            return filtered
        gate: ModelGate | None = r.ctx.scratch.get(GATE_KEY)
        if r.last_error is None and gate is not None and gate.refusals:
            raise gate.limited()  # every target we could try was over its model's limit
        raise r.last_error if r.last_error is not None else NoUsableModel("no target accepted the request")

    async def _one(self, r: Attempting, name: str, opener: Opener, hedge: bool = False) -> Won | None:
        """One attempt with breaker bookkeeping; None when the model's rate limit or breaker refused it."""
        model = r.rt.models[name]
        gate: ModelGate | None = r.ctx.scratch.get(GATE_KEY)
        if gate is not None and not await gate.admit(r.ctx, name):
            r.over_limit += 1
            return None
        record = self._ledger.start(r.outcome, name, model, hedge)
        if record is None:
            if gate is not None:
                await gate.refund(r.ctx, name)
            return None
        try:
            won = await opener.open(r, record, model)
        except UpstreamError as exc:
            scrub_error(exc, r.rt.api_key_values.get(name))  # before stats, logs and the client see it
            self._ledger.failed(record, exc)
            r.last_error, r.last_model = exc, name
            raise
        except BaseException:
            self._ledger.cancelled(record)  # cancelled (hedge loser, client gone) or a local bug
            raise
        won.reason = r.reason(name)
        return won

    async def _hedged(self, r: Attempting, opener: Opener) -> tuple[Won | None, int]:
        """Send to the first target; each time the hedge delay passes with no answer, also send
        to the next distinct target (up to `max_hedges`, each spending retry budget). The first
        answer wins, the others are cancelled. Returns the winner (None when every sent attempt
        failed) and the index in `r.order` where plain retries continue."""
        assert r.route is not None
        delay, max_hedges = self._ledger.router.hedge_delay_s(r.route), r.route.hedging.max_hedges
        tasks = {asyncio.ensure_future(self._one(r, r.order[0], opener))}
        launched, resume_at, hedges = {r.order[0]}, 1, 0
        winner: Won | None = None
        try:
            while tasks and winner is None:
                timeout = delay if hedges < max_hedges else None
                done, tasks = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if done:
                    winner = await _pick(done, opener)
                    continue
                nxt = next((i for i in range(resume_at, len(r.order)) if r.order[i] not in launched), None)
                if nxt is None or not r.budget.try_withdraw():  # a hedge is extra load: it spends budget
                    hedges = max_hedges  # no more hedges: wait for what is in flight
                    continue
                hedges, r.hedged, resume_at = hedges + 1, True, nxt + 1
                launched.add(r.order[nxt])
                self._ledger.metrics.hedges.labels(r.route.name).inc()
                tasks.add(asyncio.ensure_future(self._one(r, r.order[nxt], opener, hedge=True)))
            return winner, resume_at
        finally:
            for task in tasks:
                task.cancel()
            for late in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(late, Won):  # answered between the decision and the cancel
                    await opener.discard(late)

    async def _before_retry(self, r: Attempting, index: int, name: str) -> bool:
        """Budget and backoff before attempt `index` (> 0). False: stop retrying."""
        if not r.budget.try_withdraw():
            log.info("retry budget exhausted for %s; not retrying", r.route.name if r.route else name)
            return False
        self._ledger.metrics.retries.labels(name).inc()
        same_target = name == r.last_model
        retry_after = r.last_error.retry_after_s if (r.last_error is not None and same_target) else None
        if same_target and r.policy.exceeds_cap(retry_after):
            return False  # the upstream wants a longer pause than a client should wait
        delay = r.policy.backoff_s(index, retry_after) if same_target else 0.0
        if delay > 0:
            await self._sleep(delay)
        return True


async def _pick(done: set[asyncio.Task[Won | None]], opener: Opener) -> Won | None:
    """The winner among finished attempts; extra winners are discarded, a fatal error raised
    only when nothing won (a good answer beats the other attempt's bad request)."""
    winner: Won | None = None
    fatal: BaseException | None = None
    for task in done:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            if not (isinstance(exc, UpstreamError) and exc.retryable):
                fatal = fatal or exc
            continue
        won = task.result()
        if won is None:
            continue
        if winner is None:
            winner = won
        else:  # both answered in the same tick
            await opener.discard(won)
    if winner is None and fatal is not None:
        raise fatal
    return winner


def _answered(r: Attempting, won: Won, metrics: GatewayMetrics | None) -> None:
    outcome = r.outcome
    outcome.model, outcome.provider, outcome.route_reason = won.record.model, won.record.provider, won.reason
    outcome.ttft_s = won.ttft or None
    if metrics is not None:  # a plain answer is settled; a stream counts when it completes
        _count_fallback(r, won, metrics)


def _count_fallback(r: Attempting, won: Won, metrics: GatewayMetrics) -> None:
    route = _fallback_route(r, won)
    if route is not None:
        metrics.fallbacks.labels(route).inc()


def _fallback_route(r: Attempting, won: Won) -> str | None:
    """The route whose fallback answered (None: no route, the first target, or a hedge winner)."""
    if r.route is not None and won.record.model != r.order[0] and r.last_error is not None:
        return r.route.name
    return None


def _short_circuit(outcome: Outcome, answer: ChatCompletion) -> None:
    outcome.ok, outcome.cache_hit, outcome.response = True, True, answer
    outcome.model = answer.get("model")
    outcome.usage = Usage.from_openai(answer.get("usage"))


def _as_chunk(answer: ChatCompletion) -> ChatChunk:
    choices = [
        {"index": c.get("index", 0), "delta": c.get("message") or {}, "finish_reason": c.get("finish_reason")}
        for c in answer.get("choices") or ()
    ]
    chunk: ChatChunk = {k: answer[k] for k in ("id", "created", "model") if k in answer}
    chunk.update(object="chat.completion.chunk", choices=choices, usage=answer.get("usage"))
    return chunk
