"""The request pipeline: plan a route, try targets with retries and fallbacks, settle usage.

Handlers call `ChatPipeline.complete` / `.stream` / `.embed`; everything protocol-specific
happens in the providers, every routing decision in `aimm_gateway.routing`. This module only
orchestrates: attempt order, retry budget and backoff, hedging, the all-open queue, breaker
bookkeeping, and settling usage into metrics, live stats and cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aimm_gateway.canonical import ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, Usage
from aimm_gateway.config import ModelConfig, RetrySettings, RouteConfig
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoUsableModel,
    UpstreamError,
    UpstreamTimeout,
    format_retry_after,
)
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.routing import Plan, RequestFeatures, RetryBudget, RetryPolicy, RouterState
from aimm_gateway.runtime import Runtime
from aimm_gateway.stats import LiveStats
from aimm_gateway.tokens import estimate_prompt_tokens

log = logging.getLogger("aimm.gateway")

MAX_QUEUED = 1000  # requests waiting for a circuit to half-open, per process
_HEADER_SAFE = str.maketrans({"\r": " ", "\n": " "})


@dataclass(slots=True)
class RequestContext:
    request_id: str
    key_name: str | None = None
    fallback_model: str | None = None


@dataclass(slots=True)
class Served:
    """Which model answered and how: becomes the `x-aimm-*` response headers."""

    model: str
    provider: str
    attempts: int
    route_reason: str
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal(0)
    latency_s: float = 0.0

    def headers(self) -> dict[str, str]:
        reason = self.route_reason.translate(_HEADER_SAFE)
        return {
            "x-aimm-model": self.model,
            "x-aimm-provider": self.provider,
            "x-aimm-attempts": str(self.attempts),
            "x-aimm-route-reason": reason.encode("ascii", "replace").decode()[:200],
        }


@dataclass(slots=True)
class StreamOutcome:
    served: Served
    chunks: AsyncIterator[ChatChunk]  # first chunk included; raises GatewayError mid-stream


@dataclass(slots=True)
class _Opened:
    """An upstream stream that has produced its first chunk: from here on, it is the answer."""

    name: str
    model: ModelConfig
    upstream: AsyncIterator[ChatChunk]
    first: ChatChunk
    started: float
    ttfb: float


@dataclass(slots=True)
class _Request:
    """One client request's routing state across its attempts."""

    rt: Runtime
    req: ChatRequest
    body: dict[str, Any]
    ctx: RequestContext
    plan: Plan
    route: RouteConfig | None
    order: list[str]
    policy: RetryPolicy
    budget: RetryBudget
    attempts: int = 0
    last_error: UpstreamError | None = None
    last_model: str | None = None
    hedged: bool = False

    def reason(self, name: str) -> str:
        if name == self.order[0] and self.attempts <= 1:
            return self.plan.reason
        if self.hedged and self.last_error is None:
            return f"hedge: {name} answered before {self.order[0]}"
        cause = self.last_error.kind if self.last_error is not None else "skipped"
        return f"fallback to {name} after {cause}" if name != self.order[0] else f"retry after {cause}"


class ChatPipeline:
    def __init__(
        self,
        router: RouterState,
        metrics: GatewayMetrics,
        stats: LiveStats,
        sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
    ) -> None:
        self._router = router
        self._metrics = metrics
        self._stats = stats
        self._sleep = sleep
        self._queued = 0

    # -- planning ---------------------------------------------------------------------------

    async def _prepare(self, rt: Runtime, req: ChatRequest, body: dict[str, Any], ctx: RequestContext) -> _Request:
        name = req.model or rt.config.server.default_model
        if not name:
            raise InvalidRequest("model: required (this gateway has no default model)", param="model")
        if ctx.fallback_model is not None and ctx.fallback_model not in rt.models:
            raise ModelNotFound(
                f"fallback_model: the model {ctx.fallback_model!r} does not exist", param="fallback_model"
            )
        features = RequestFeatures(
            prompt_tokens=estimate_prompt_tokens(req),
            max_output_tokens=req.output_limit,
            required_capabilities=req.required_capabilities(),
            max_cost_usd=None,
            fallback_model=ctx.fallback_model,
        )
        route = rt.routes.get(name)
        plan = self._plan(rt, name, route, features)
        if not plan.attempts and route is not None and route.queue_timeout_s > 0 and plan.retry_after_s is not None:
            plan = await self._wait_for_capacity(rt, name, route, features, plan)
        if not plan.attempts:
            raise _no_target(name, plan)
        retries = _retry_settings(rt, route)
        return _Request(
            rt, req, body, ctx, plan, route,
            order=_attempt_order(plan, retries),
            policy=self._router.retry_policy(retries),
            budget=self._router.retry_budget(route.name if route is not None else name, retries),
        )  # fmt: skip

    def _plan(self, rt: Runtime, name: str, route: RouteConfig | None, features: RequestFeatures) -> Plan:
        if route is not None:
            return self._router.plan(route, rt.routable, features, rt.config.circuit_breaker)
        model = rt.models.get(name)
        if model is None:
            raise ModelNotFound(f"The model {name!r} does not exist", param="model")
        if not model.enabled:
            raise NoUsableModel(f"model {name!r} is disabled")
        if name in rt.unusable:
            raise NoUsableModel(f"model {name!r} cannot serve: {rt.unusable[name]}")
        return self._router.plan_single(model, features, rt.config.circuit_breaker, rt.routable)

    async def _wait_for_capacity(
        self, rt: Runtime, name: str, route: RouteConfig, features: RequestFeatures, plan: Plan
    ) -> Plan:
        """Every target is open: wait (bounded queue, bounded time) for one to half-open."""
        if self._queued >= MAX_QUEUED:
            return plan
        self._queued += 1
        try:
            deadline = time.monotonic() + route.queue_timeout_s
            while not plan.attempts and plan.retry_after_s is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                await self._sleep(min(max(plan.retry_after_s, 0.01), remaining))
                plan = self._plan(rt, name, route, features)
            return plan
        finally:
            self._queued -= 1

    async def _before_retry(self, r: _Request, index: int, name: str) -> bool:
        """Budget and backoff before attempt `index` (> 0). False: stop retrying."""
        if not r.budget.try_withdraw():
            log.info("retry budget exhausted for %s; not retrying", r.route.name if r.route else name)
            return False
        self._metrics.retries.labels(name).inc()
        same_target = name == r.last_model
        retry_after = r.last_error.retry_after_s if (r.last_error is not None and same_target) else None
        if same_target and r.policy.exceeds_cap(retry_after):
            return False  # the upstream wants a longer pause than a client should wait
        delay = r.policy.backoff_s(index, retry_after) if same_target else 0.0
        if delay > 0:
            await self._sleep(delay)
        return True

    def _call(self, r: _Request, name: str) -> UpstreamCall:
        model = r.rt.models[name]
        timeouts = r.route.timeouts if r.route is not None and r.route.timeouts is not None else model.timeouts
        return UpstreamCall(model, r.req, r.body, r.rt.api_key_values.get(name), timeouts, r.ctx.request_id)

    # -- non-streaming ----------------------------------------------------------------------

    async def complete(
        self, rt: Runtime, req: ChatRequest, body: dict[str, Any], ctx: RequestContext
    ) -> tuple[ChatCompletion, Served]:
        r = await self._prepare(rt, req, body, ctx)
        r.budget.deposit()
        filtered: tuple[ChatCompletion, Served] | None = None
        start = 0
        if r.route is not None and r.route.hedging.enabled and len(set(r.order)) > 1:
            result, start = await self._hedged(r)
            if result is not None:
                return result
        refused_by: set[str] = set()  # models that content-filtered this request: never asked twice
        for index in range(start, len(r.order)):
            name = r.order[index]
            if name in refused_by:
                continue
            if index > 0 and not await self._before_retry(r, index, name):
                break
            try:
                outcome = await self._attempt(r, name)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                continue
            if outcome is None:
                continue
            response, served = outcome
            if _content_filtered(response) and any(n != name for n in r.order[index + 1 :]):
                # Content-policy fallback: another model may answer what this one refused.
                filtered = filtered or outcome
                refused_by.add(name)
                r.last_error = UpstreamError("content filtered", kind="content_filter", status=400)
                r.last_model = name
                continue
            return response, served
        if filtered is not None:
            return filtered
        raise r.last_error if r.last_error is not None else NoUsableModel("no target accepted the request")

    async def _attempt(self, r: _Request, name: str) -> tuple[ChatCompletion, Served] | None:
        """One upstream call with breaker bookkeeping; None when the breaker refused it."""
        if not self._router.acquire(name):
            return None
        model = r.rt.models[name]
        r.attempts += 1
        self._router.on_start(name)
        started = time.perf_counter()
        try:
            response = await r.rt.providers[name].complete(self._call(r, name))
        except UpstreamError as exc:
            self._failed(name, model, exc, time.perf_counter() - started)
            r.last_error, r.last_model = exc, name
            raise
        except BaseException:
            self._router.on_cancel(name)  # cancelled (hedge loser, client gone) or a local bug
            raise
        latency = time.perf_counter() - started
        served = Served(name, model.provider, r.attempts, r.reason(name))
        self._settle(name, model, Usage.from_openai(response.get("usage")), latency, latency, served, r)
        return response, served

    async def _hedged(self, r: _Request) -> tuple[tuple[ChatCompletion, Served] | None, int]:
        """Send to the first target; if no answer within the hedge delay, also to the next.
        The first complete answer wins and the other is cancelled. Returns the answer (None when
        every sent attempt failed) and the index in `r.order` where plain retries continue."""
        assert r.route is not None
        first, second = r.order[0], next(n for n in r.order[1:] if n != r.order[0])
        primary = asyncio.ensure_future(self._attempt(r, first))
        done, _ = await asyncio.wait({primary}, timeout=self._router.hedge_delay_s(r.route))
        tasks = {primary}
        resume_at = 1
        if not done and r.budget.try_withdraw():  # a hedge is extra load: it spends retry budget
            self._metrics.hedges.labels(r.route.name).inc()
            r.hedged = True
            tasks.add(asyncio.ensure_future(self._attempt(r, second)))
            resume_at = r.order.index(second) + 1
        try:
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.cancelled():
                        continue
                    exc = task.exception()
                    if isinstance(exc, UpstreamError) and not exc.retryable:
                        raise exc
                    if exc is not None and not isinstance(exc, UpstreamError):
                        raise exc
                    result = task.result() if exc is None else None
                    if result is not None:
                        return result, resume_at
            return None, resume_at
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    # -- streaming ----------------------------------------------------------------------------

    async def stream(self, rt: Runtime, req: ChatRequest, body: dict[str, Any], ctx: RequestContext) -> StreamOutcome:
        """Fail over freely until the first chunk arrives; after that the stream is committed."""
        r = await self._prepare(rt, req, body, ctx)
        r.budget.deposit()
        start = 0
        if r.route is not None and r.route.hedging.enabled and len(set(r.order)) > 1:
            opened, start = await self._hedged_open(r)
            if opened is not None:
                return self._commit(opened, r)
        for index in range(start, len(r.order)):
            name = r.order[index]
            if index > 0 and not await self._before_retry(r, index, name):
                break
            try:
                opened = await self._open_stream(r, name)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise
                continue
            if opened is not None:
                return self._commit(opened, r)
        raise r.last_error if r.last_error is not None else NoUsableModel("no target accepted the request")

    async def _open_stream(self, r: _Request, name: str) -> _Opened | None:
        """Start one upstream stream and wait for its first chunk; None when the breaker refused.

        Failures are recorded here (breaker, metrics) and re-raised as UpstreamError.
        """
        if not self._router.acquire(name):
            return None
        model = r.rt.models[name]
        r.attempts += 1
        self._router.on_start(name)
        started = time.perf_counter()
        call = self._call(r, name)
        upstream = r.rt.providers[name].stream(call)
        try:
            # `first_byte_s` bounds the time to the first *chunk*, not only to the response
            # headers: an upstream that sends 200 and then stalls would otherwise hold the
            # request for `stream_idle_s` (and be served late) instead of failing over while
            # failover is still free, before anything reached the client.
            async with asyncio.timeout(call.timeouts.first_byte_s):
                first = await anext(upstream)
        except TimeoutError:
            failure: UpstreamError = UpstreamTimeout(
                f"{model.provider} sent no stream chunk within {call.timeouts.first_byte_s}s"
            )
        except StopAsyncIteration:
            failure = UpstreamError(f"{model.provider} returned an empty stream", kind="http")
        except UpstreamError as exc:
            failure = exc
        except BaseException:
            await _aclose(upstream)
            self._router.on_cancel(name)  # cancelled: a hedge loser, or the client went away
            raise
        else:
            ttfb = time.perf_counter() - started
            self._metrics.ttft.labels(name, model.provider).observe(ttfb)
            return _Opened(name, model, upstream, first, started, ttfb)
        await _aclose(upstream)
        self._failed(name, model, failure, time.perf_counter() - started)
        r.last_error, r.last_model = failure, name
        raise failure

    async def _hedged_open(self, r: _Request) -> tuple[_Opened | None, int]:
        """Hedging for streams: if the first target sends no chunk within the hedge delay, open
        the next one too; the first to send a chunk is kept, the other closed. Nothing has reached
        the client yet, so no output is ever spliced."""
        assert r.route is not None
        first, second = r.order[0], next(n for n in r.order[1:] if n != r.order[0])
        primary = asyncio.ensure_future(self._open_stream(r, first))
        done, _ = await asyncio.wait({primary}, timeout=self._router.hedge_delay_s(r.route))
        tasks = {primary}
        resume_at = 1
        if not done and r.budget.try_withdraw():
            self._metrics.hedges.labels(r.route.name).inc()
            r.hedged = True
            tasks.add(asyncio.ensure_future(self._open_stream(r, second)))
            resume_at = r.order.index(second) + 1
        winner: _Opened | None = None
        try:
            while tasks and winner is None:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = None if task.cancelled() else task.exception()
                    if isinstance(exc, UpstreamError) and exc.retryable:
                        continue
                    if exc is not None:
                        raise exc
                    opened = task.result() if not task.cancelled() else None
                    if opened is not None and winner is None:
                        winner = opened
                    elif opened is not None:  # both sent a first chunk in the same tick
                        await _aclose(opened.upstream)
                        self._router.on_cancel(opened.name)
            return winner, resume_at
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _commit(self, opened: _Opened, r: _Request) -> StreamOutcome:
        served = Served(opened.name, opened.model.provider, r.attempts, r.reason(opened.name))
        chunks = self._follow(opened.upstream, opened.first, opened.model, served, opened.started, opened.ttfb, r)
        return StreamOutcome(served, chunks)

    async def _follow(
        self,
        upstream: AsyncIterator[ChatChunk],
        first: ChatChunk,
        model: ModelConfig,
        served: Served,
        started: float,
        ttfb: float,
        r: _Request,
    ) -> AsyncIterator[ChatChunk]:
        name = served.model
        usage = Usage()
        outcome = "cancelled"  # until proven otherwise: the client may go away mid-stream
        try:
            chunk: ChatChunk | None = first
            while chunk is not None:
                if chunk.get("usage"):
                    usage = Usage.from_openai(chunk["usage"])
                yield chunk
                chunk = await anext(upstream, None)
            outcome = "ok"
        except UpstreamError as exc:
            outcome = "failed"
            self._failed(name, model, exc, time.perf_counter() - started)
            raise
        finally:
            await _aclose(upstream)
            if outcome == "ok":
                self._settle(name, model, usage, time.perf_counter() - started, ttfb, served, r)
            elif outcome == "cancelled":
                self._router.on_cancel(name)

    # -- embeddings -----------------------------------------------------------------------------

    async def embed(
        self, rt: Runtime, req: EmbeddingRequest, body: dict[str, Any], ctx: RequestContext
    ) -> tuple[dict[str, Any], Served]:
        name = req.model or rt.config.server.default_model
        if name in rt.routes:
            raise InvalidRequest(f"model: {name!r} is a chat route; embeddings need a model name", param="model")
        model = rt.models.get(name or "")
        if model is None:
            raise ModelNotFound(f"The model {name!r} does not exist", param="model")
        if not model.enabled or model.name in rt.unusable:
            raise NoUsableModel(f"model {model.name!r} is not available")
        call = EmbeddingCall(model, req, body, rt.api_key_values.get(model.name), model.timeouts, ctx.request_id)
        started = time.perf_counter()
        self._router.on_start(model.name)
        try:
            response = await rt.providers[model.name].embed(call)
        except UpstreamError as exc:
            self._failed(model.name, model, exc, time.perf_counter() - started)
            raise
        except BaseException:
            self._router.on_cancel(model.name)
            raise
        usage = Usage(prompt_tokens=int((response.get("usage") or {}).get("prompt_tokens") or 0))
        served = Served(model.name, model.provider, 1, "requested model")
        latency = time.perf_counter() - started
        self._settle(model.name, model, usage, latency, latency, served, None)
        return response, served

    # -- bookkeeping ------------------------------------------------------------------------------

    def _failed(self, name: str, model: ModelConfig, exc: UpstreamError, latency: float) -> None:
        self._router.on_failure(name, exc.kind, exc.status, latency)
        self._metrics.requests.labels(name, model.provider, str(exc.status)).inc()
        self._metrics.errors.labels(name, model.provider, exc.kind).inc()
        self._stats.record(name, latency, ok=False, cost=Decimal(0), error=exc.message)
        log.warning("upstream failure model=%s kind=%s status=%s: %s", name, exc.kind, exc.status, exc.message)

    def _settle(
        self,
        name: str,
        model: ModelConfig,
        usage: Usage,
        latency: float,
        ttfb: float,
        served: Served,
        r: _Request | None,
    ) -> None:
        cost = request_cost(usage, model.pricing)
        self._router.on_success(name, ttfb, cost)
        m = self._metrics
        series = m.series(name, model.provider)
        series.ok.inc()
        series.duration.observe(latency)
        series.input_tokens.inc(usage.prompt_tokens)
        series.output_tokens.inc(usage.completion_tokens)
        series.cost.inc(float(cost))
        self._stats.record(name, latency, ok=True, cost=cost)
        if r is not None:
            for budget in r.rt.budgets_for(name, r.ctx.key_name):
                spent = self._stats.add_budget_spend(budget.name, cost)
                m.budget_used.labels(budget.name).set(float(spent / budget.limit_usd))
            if r.route is not None and name != r.order[0] and r.last_error is not None:
                m.fallbacks.labels(r.route.name).inc()  # a hedge winner is not a fallback
        served.usage, served.cost, served.latency_s = usage, cost, latency


def _retry_settings(rt: Runtime, route: RouteConfig | None) -> RetrySettings:
    return route.retries if route is not None and route.retries is not None else rt.config.retries


def _attempt_order(plan: Plan, retries: RetrySettings) -> list[str]:
    # Every planned target once, in order; pad by cycling so a lone target is retried on itself.
    order = list(plan.attempts)
    i = 0
    while len(order) < retries.attempts:
        order.append(plan.attempts[i % len(plan.attempts)])
        i += 1
    return order


_REQUEST_MISFITS = ("context window", "lacks ", "estimated cost over")


def _no_target(name: str, plan: Plan) -> GatewayError:
    detail = "; ".join(f"{m}: {why}" for m, why in plan.skipped.items()) or "no target available"
    reasons = plan.skipped.values()
    if plan.retry_after_s is None and reasons and all(why.startswith(_REQUEST_MISFITS) for why in reasons):
        # Nothing is down: this request can never fit any target (too long, needs a capability).
        return InvalidRequest(f"no model behind {name!r} can serve this request ({detail})", code="no_suitable_model")
    headers = {"retry-after": format_retry_after(plan.retry_after_s)} if plan.retry_after_s is not None else {}
    return NoUsableModel(f"no usable model for {name!r} ({detail})", headers=headers)


def _content_filtered(response: ChatCompletion) -> bool:
    choices = response.get("choices") or ()
    return bool(choices) and all(c.get("finish_reason") == "content_filter" for c in choices)


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken upstream must not mask the real error
            log.debug("error closing upstream stream", exc_info=True)
