"""A runtime of in-process mock models, a pipeline over it, and contexts: for stage and loop tests."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any, ClassVar

from aimm_gateway.budget.services import CostServices
from aimm_gateway.canonical import ChatCompletion, validate_chat
from aimm_gateway.config import GatewayConfig, parse_config
from aimm_gateway.metrics import GatewayMetrics
from aimm_gateway.pipeline import ChatPipeline
from aimm_gateway.providers.http import UpstreamPools
from aimm_gateway.routing import RouterState, SystemClock
from aimm_gateway.runtime import Runtime, build_runtime
from aimm_gateway.security.identity import Identity, Role
from aimm_gateway.stages.assembly import ORDER, StageAssembly
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps, StageFactory
from aimm_gateway.stats import LiveStats


def mock_model(name: str, latency_ms: float = 0, price: str = "0.001", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "mock",
        "mock": {"latency_ms": latency_ms, "stream_chunks": 3},
        "pricing": {"input_per_1k": price, "output_per_1k": price},
        "capabilities": ["chat", "streaming"],
        **extra,
    }


def runtime(models: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, **extra: Any) -> Runtime:
    return build_runtime(parse_config({"models": models, "routes": routes or [], **extra}), UpstreamPools())


def context(rt: Runtime, model: str, stream: bool = False, key: str | None = "team-a", **body: Any) -> RequestContext:
    doc = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **body}
    if stream:
        doc["stream"] = True
    identity = Identity(key, Role.USER) if key is not None else None
    req = validate_chat(doc)
    return RequestContext("rid-1", rt, identity=identity, requested=model, body=doc, stream=stream, request=req)


class Deps:
    """The long-lived parts a test pipeline shares with its stages."""

    def __init__(self) -> None:
        self.metrics = GatewayMetrics()
        self.stats = LiveStats()
        self.cost = CostServices(GatewayConfig(), self.metrics)  # in-process state, no store
        self.stage_deps = StageDeps(self.metrics, self.stats, self.cost)

    def pipeline(self, order: tuple[StageFactory, ...] = ORDER) -> ChatPipeline:
        router = RouterState(SystemClock(), random.Random(7))
        return ChatPipeline(router, self.metrics, self.stats, stages=StageAssembly(self.stage_deps, order))


class Recorder:
    """A stage that records what it saw; optionally sets routing fields or answers itself."""

    name: ClassVar[str] = "recorder"

    def __init__(
        self,
        log: list[str],
        tag: str = "r",
        answer: ChatCompletion | None = None,
        chunk_hook: ChunkHook | None = None,
        max_cost: Decimal | None = None,
        downgrade_to: str | None = None,
    ) -> None:
        self.log, self.tag, self.answer, self.chunk_hook = log, tag, answer, chunk_hook
        self.max_cost, self.downgrade_to = max_cost, downgrade_to
        self.outcomes: list[Outcome] = []

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        self.log.append(f"before:{self.tag}")
        if self.max_cost is not None:
            ctx.max_cost_usd = self.max_cost
        if self.downgrade_to is not None:
            ctx.downgrade_to = self.downgrade_to
        return self.answer

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        self.log.append(f"after:{self.tag}")
        self.outcomes.append(outcome)
