"""From a request to an ordered list of targets: plan, wait for capacity, attempt order."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aimm_gateway.canonical import ChatRequest
from aimm_gateway.config import RetrySettings, RouteConfig
from aimm_gateway.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoUsableModel,
    UpstreamError,
    format_retry_after,
)
from aimm_gateway.routing import Plan, RequestFeatures, RetryBudget, RetryPolicy, RouterState
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import Outcome, RequestContext

MAX_QUEUED = 1000  # requests waiting for a circuit to half-open, per process

Sleep = Callable[[float], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class Attempting:
    """One client request's routing state across its attempts (the loop's working memory)."""

    ctx: RequestContext
    req: ChatRequest
    plan: Plan
    route: RouteConfig | None
    order: list[str]
    policy: RetryPolicy
    budget: RetryBudget
    outcome: Outcome  # attempts are recorded here as they start
    last_error: UpstreamError | None = None
    last_model: str | None = None
    hedged: bool = False
    refused_by: set[str] = field(default_factory=set)  # content-filtered: never asked twice
    over_limit: int = 0  # attempts skipped because their model was over its rate limit

    @property
    def rt(self) -> Runtime:
        return self.ctx.runtime

    def reason(self, name: str) -> str:
        if name == self.order[0] and len(self.outcome.attempts) <= 1:
            return self.plan.reason
        if self.hedged and self.last_error is None:
            return f"hedge: {name} answered before {self.order[0]}"
        cause = self.last_error.kind if self.last_error is not None else "skipped"
        return f"fallback to {name} after {cause}" if name != self.order[0] else f"retry after {cause}"


class Planner:
    """Plans one request against the runtime snapshot; owns the bounded all-open wait queue."""

    def __init__(self, router: RouterState, sleep: Sleep) -> None:
        self._router = router
        self._sleep = sleep
        self._queued = 0

    async def prepare(self, ctx: RequestContext, req: ChatRequest, outcome: Outcome) -> Attempting:
        rt = ctx.runtime
        name = ctx.requested
        if not name:
            raise InvalidRequest("model: required (this gateway has no default model)", param="model")
        if ctx.fallback_model is not None and ctx.fallback_model not in rt.models:
            raise ModelNotFound(
                f"fallback_model: the model {ctx.fallback_model!r} does not exist", param="fallback_model"
            )
        features = RequestFeatures(
            prompt_tokens=ctx.prompt_tokens,
            max_output_tokens=ctx.max_output_tokens,
            required_capabilities=req.required_capabilities(),
            max_cost_usd=ctx.max_cost_usd,
            fallback_model=ctx.fallback_model,
        )
        if ctx.downgrade_to is not None:
            name = ctx.downgrade_to  # the budget stage asked for a cheaper model
        route = rt.routes.get(name)
        plan = self._plan(rt, name, route, features)
        if not plan.attempts and route is not None and route.queue_timeout_s > 0 and plan.retry_after_s is not None:
            plan = await self._wait_for_capacity(rt, name, route, features, plan)
        if not plan.attempts:
            raise no_target(name, plan)
        if ctx.downgrade_to is not None:
            plan = Plan(plan.attempts, f"budget downgrade to {ctx.downgrade_to}: {plan.reason}", None, plan.skipped)
        retries = retry_settings(rt, route)
        return Attempting(
            ctx, req, plan, route,
            order=attempt_order(plan, retries),
            policy=self._router.retry_policy(retries),
            budget=self._router.retry_budget(route.name if route is not None else name, retries),
            outcome=outcome,
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


def retry_settings(rt: Runtime, route: RouteConfig | None) -> RetrySettings:
    return route.retries if route is not None and route.retries is not None else rt.config.retries


def attempt_order(plan: Plan, retries: RetrySettings) -> list[str]:
    # Every planned target once, in order; pad by cycling so a lone target is retried on itself.
    order = list(plan.attempts)
    i = 0
    while len(order) < retries.attempts:
        order.append(plan.attempts[i % len(plan.attempts)])
        i += 1
    return order


def no_target(name: str, plan: Plan) -> GatewayError:
    """The error for an empty plan: 400 when the request fits no target, else 503 (+ Retry-After)."""
    reasons = plan.skip_reasons()
    detail = "; ".join(f"{m}: {why}" for m, why in reasons.items()) or "no target available"
    if plan.request_misfit:
        # Nothing is down: this request can never fit any target (too long, needs a capability).
        return InvalidRequest(f"no model behind {name!r} can serve this request ({detail})", code="no_suitable_model")
    headers = {"retry-after": format_retry_after(plan.retry_after_s)} if plan.retry_after_s is not None else {}
    return NoUsableModel(f"no usable model for {name!r} ({detail})", headers=headers)
