"""The request pipeline: plan a route, try targets with retries and fallbacks, settle usage.

Handlers call `ChatPipeline.complete` / `.stream`; everything protocol-specific happens in the
providers, every routing decision in `aimm_gateway.routing`. This module only orchestrates:
attempt order, retry budget, backoff, breaker bookkeeping, metrics and cost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aimm_gateway.canonical import ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, Usage
from aimm_gateway.config import ModelConfig, RetrySettings, RouteConfig, Timeouts
from aimm_gateway.cost import request_cost
from aimm_gateway.errors import GatewayError, InvalidRequest, ModelNotFound, NoUsableModel, UpstreamError
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.providers.base import EmbeddingCall, UpstreamCall
from aimm_gateway.routing import Plan, RequestFeatures, RetryBudget, RetryPolicy, RouterState
from aimm_gateway.runtime import Runtime
from aimm_gateway.stats import LiveStats
from aimm_gateway.tokens import estimate_prompt_tokens

log = logging.getLogger("aimm.gateway")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    key_name: str | None = None
    fallback_model: str | None = None
    started: float = field(default_factory=time.perf_counter)


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
        return {
            "x-aimm-model": self.model,
            "x-aimm-provider": self.provider,
            "x-aimm-attempts": str(self.attempts),
            "x-aimm-route-reason": self.route_reason,
        }


@dataclass(slots=True)
class StreamOutcome:
    served: Served
    chunks: AsyncIterator[ChatChunk]  # first chunk included; raises GatewayError mid-stream


class ChatPipeline:
    def __init__(
        self,
        router: RouterState,
        metrics: GatewayMetrics,
        stats: LiveStats,
        budget: RetryBudget,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._router = router
        self._metrics = metrics
        self._stats = stats
        self._budget = budget
        self._sleep = sleep

    # -- planning -------------------------------------------------------------------------

    def _plan(self, rt: Runtime, name: str | None, req: ChatRequest | None, ctx: RequestContext) -> tuple[Plan, RouteConfig | None]:
        name = name or rt.config.server.default_model
        if not name:
            raise InvalidRequest("model: required (this gateway has no default model)", param="model")
        features = RequestFeatures(
            prompt_tokens=estimate_prompt_tokens(req) if req is not None else 0,
            max_output_tokens=req.output_limit if req is not None else None,
            required_capabilities=req.required_capabilities() if req is not None else frozenset({"embeddings"}),
            max_cost_usd=None,
            fallback_model=ctx.fallback_model,
        )
        if ctx.fallback_model is not None and ctx.fallback_model not in rt.models:
            raise ModelNotFound(f"fallback_model: the model {ctx.fallback_model!r} does not exist", param="fallback_model")
        route = rt.routes.get(name)
        models = _usable(rt)
        if route is not None:
            plan = self._router.plan(route, models, features, rt.config.circuit_breaker)
        elif name in rt.models:
            model = rt.models[name]
            if not model.enabled:
                raise NoUsableModel(f"model {name!r} is disabled")
            if name in rt.unusable:
                raise NoUsableModel(f"model {name!r} cannot serve: {rt.unusable[name]}")
            plan = self._router.plan_single(model, features, rt.config.circuit_breaker, models)
        else:
            raise ModelNotFound(f"The model {name!r} does not exist", param="model")
        if not plan.attempts:
            retry_after = plan.retry_after_s
            headers = {"retry-after": str(max(1, int(retry_after + 0.999)))} if retry_after is not None else {}
            detail = "; ".join(f"{m}: {why}" for m, why in plan.skipped.items()) or "no target available"
            raise NoUsableModel(f"no usable model for {name!r} ({detail})", headers=headers)
        return plan, route

    def _retry_settings(self, rt: Runtime, route: RouteConfig | None) -> RetrySettings:
        return (route.retries if route is not None and route.retries else None) or rt.config.retries

    def _timeouts(self, model: ModelConfig, route: RouteConfig | None) -> Timeouts:
        return route.timeouts if route is not None and route.timeouts is not None else model.timeouts

    def _attempt_order(self, plan: Plan, retries: RetrySettings) -> list[str]:
        # Every planned target once, in order; pad by cycling so a lone target is retried on itself.
        order = list(plan.attempts)
        i = 0
        while len(order) < retries.attempts:
            order.append(plan.attempts[i % len(plan.attempts)])
            i += 1
        return order

    async def _before_attempt(self, index: int, name: str, last: UpstreamError | None, policy: RetryPolicy) -> bool:
        """Backoff and budget for attempt `index` (0 is the first try)."""
        if index == 0:
            return True
        if not self._budget.try_withdraw():
            return False
        self._metrics.retries.labels(name).inc()
        delay = policy.backoff_s(index, last.retry_after_s if last else None)
        if delay > 0:
            await self._sleep(delay)
        return True

    # -- non-streaming ----------------------------------------------------------------------

    async def complete(
        self, rt: Runtime, req: ChatRequest, body: dict[str, Any], ctx: RequestContext
    ) -> tuple[ChatCompletion, Served]:
        plan, route = self._plan(rt, req.model, req, ctx)
        retries = self._retry_settings(rt, route)
        policy = RetryPolicy(retries)
        self._budget.deposit()
        last: UpstreamError | None = None
        attempts = 0
        for index, name in enumerate(self._attempt_order(plan, retries)):
            if not await self._before_attempt(index, name, last, policy):
                break
            if not self._router.acquire(name):
                continue
            model = rt.models[name]
            attempts += 1
            call = UpstreamCall(model, req, body, rt.api_key_values.get(name), self._timeouts(model, route), ctx.request_id)
            self._router.on_start(name)
            started = time.perf_counter()
            try:
                response = await rt.providers[name].complete(call)
            except UpstreamError as exc:
                self._failed(name, model, exc, time.perf_counter() - started)
                if not exc.retryable:
                    raise
                last = exc
                continue
            except asyncio.CancelledError:
                self._router.on_cancel(name)
                raise
            latency = time.perf_counter() - started
            served = self._succeeded(name, model, Usage.from_openai(response.get("usage")), latency, attempts, plan, route, index)
            return response, served
        raise last if last is not None else NoUsableModel("no target accepted the request")

    # -- streaming ----------------------------------------------------------------------------

    async def stream(self, rt: Runtime, req: ChatRequest, body: dict[str, Any], ctx: RequestContext) -> StreamOutcome:
        """Fail over freely until the first chunk arrives; after that the stream is committed."""
        plan, route = self._plan(rt, req.model, req, ctx)
        retries = self._retry_settings(rt, route)
        policy = RetryPolicy(retries)
        self._budget.deposit()
        last: UpstreamError | None = None
        attempts = 0
        for index, name in enumerate(self._attempt_order(plan, retries)):
            if not await self._before_attempt(index, name, last, policy):
                break
            if not self._router.acquire(name):
                continue
            model = rt.models[name]
            attempts += 1
            call = UpstreamCall(model, req, body, rt.api_key_values.get(name), self._timeouts(model, route), ctx.request_id)
            self._router.on_start(name)
            started = time.perf_counter()
            upstream = rt.providers[name].stream(call)
            try:
                first = await anext(upstream)
            except StopAsyncIteration:
                exc = UpstreamError(f"{model.provider} returned an empty stream", kind="http")
                self._failed(name, model, exc, time.perf_counter() - started)
                last = exc
                continue
            except UpstreamError as exc:
                await _aclose(upstream)
                self._failed(name, model, exc, time.perf_counter() - started)
                if not exc.retryable:
                    raise
                last = exc
                continue
            except asyncio.CancelledError:
                await _aclose(upstream)
                self._router.on_cancel(name)
                raise
            self._metrics.ttft.labels(name, model.provider).observe(time.perf_counter() - started)
            served = Served(name, model.provider, attempts, plan.reason if index == 0 else f"fallback after {last.kind if last else 'skip'}")
            return StreamOutcome(served, self._follow(upstream, first, name, model, served, started, plan, route, index))
        raise last if last is not None else NoUsableModel("no target accepted the request")

    async def _follow(
        self,
        upstream: AsyncIterator[ChatChunk],
        first: ChatChunk,
        name: str,
        model: ModelConfig,
        served: Served,
        started: float,
        plan: Plan,
        route: RouteConfig | None,
        index: int,
    ) -> AsyncIterator[ChatChunk]:
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
                self._succeeded(name, model, usage, time.perf_counter() - started, served.attempts, plan, route, index, served)
            elif outcome == "cancelled":
                self._router.on_cancel(name)

    # -- embeddings -----------------------------------------------------------------------------

    async def embed(
        self, rt: Runtime, req: EmbeddingRequest, body: dict[str, Any], ctx: RequestContext
    ) -> tuple[dict[str, Any], Served]:
        name = req.model or rt.config.server.default_model
        if not name or name not in rt.models:
            if name in rt.routes:
                raise InvalidRequest(f"model: {name!r} is a chat route; embeddings need a model name", param="model")
            raise ModelNotFound(f"The model {name!r} does not exist", param="model")
        model = rt.models[name]
        if not model.enabled or name in rt.unusable:
            raise NoUsableModel(f"model {name!r} is not available")
        call = EmbeddingCall(model, req, body, rt.api_key_values.get(name), model.timeouts, ctx.request_id)
        started = time.perf_counter()
        self._router.on_start(name)
        try:
            response = await rt.providers[name].embed(call)
        except UpstreamError as exc:
            self._failed(name, model, exc, time.perf_counter() - started)
            raise
        except GatewayError:
            self._router.on_cancel(name)
            raise
        usage = Usage(prompt_tokens=int((response.get("usage") or {}).get("prompt_tokens") or 0))
        plan = Plan(attempts=(name,), reason="requested model", retry_after_s=None, skipped={})
        served = self._succeeded(name, model, usage, time.perf_counter() - started, 1, plan, None, 0)
        return response, served

    # -- bookkeeping ------------------------------------------------------------------------------

    def _failed(self, name: str, model: ModelConfig, exc: UpstreamError, latency: float) -> None:
        self._router.on_failure(name, exc.kind, exc.status, latency)
        self._metrics.requests.labels(name, model.provider, str(exc.status)).inc()
        self._metrics.errors.labels(name, model.provider, exc.kind).inc()
        self._stats.record(name, latency, ok=False, cost=Decimal(0), error=exc.message)
        log.warning("upstream failure model=%s kind=%s status=%s: %s", name, exc.kind, exc.status, exc.message)

    def _succeeded(
        self,
        name: str,
        model: ModelConfig,
        usage: Usage,
        latency: float,
        attempts: int,
        plan: Plan,
        route: RouteConfig | None,
        index: int,
        served: Served | None = None,
    ) -> Served:
        cost = request_cost(usage, model.pricing)
        self._router.on_success(name, latency, cost)
        m = self._metrics
        m.requests.labels(name, model.provider, "200").inc()
        m.duration.labels(name, model.provider).observe(latency)
        m.input_tokens.labels(name, model.provider).inc(usage.prompt_tokens)
        m.output_tokens.labels(name, model.provider).inc(usage.completion_tokens)
        m.cost.labels(name, model.provider).inc(float(cost))
        self._stats.record(name, latency, ok=True, cost=cost)
        if index > 0 and route is not None:
            m.fallbacks.labels(route.name).inc()
        if served is None:
            served = Served(name, model.provider, attempts, plan.reason if index == 0 else "fallback")
        served.usage, served.cost, served.latency_s = usage, cost, latency
        return served


def _usable(rt: Runtime) -> dict[str, ModelConfig]:
    if not rt.unusable:
        return rt.models
    return {n: m for n, m in rt.models.items() if n not in rt.unusable}


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken upstream must not mask the real error
            log.debug("error closing upstream stream", exc_info=True)
