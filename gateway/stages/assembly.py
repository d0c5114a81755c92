"""The order of the stages, and their chains built once per runtime snapshot and route.

To add a stage: write its module (a class with `name`, `chunk_hook`, `before`, `after`, and a
`build(rt, name, deps)` that returns None when a route does not need it) and put `build` in
ORDER at its place. The order is the request path's (see base.py and docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from aimm_gateway.runtime import Runtime
from aimm_gateway.stages import auth, budget, cache, guard, live_tail, ratelimit, telemetry, usage
from aimm_gateway.stages.base import RequestContext, Stage, StageDeps, StageFactory
from aimm_gateway.stages.chain import EMPTY, StageChain

# before: telemetry → authenticate → rate limit → guard request → reserve budget → cache lookup
# after:  the reverse (each stage's `after` runs for every stage whose `before` ran)
# telemetry first, then the live tail (in a chain only while watched), then usage: their `after`s
# run last and see every request, refused ones too.
ORDER: tuple[StageFactory, ...] = (
    telemetry.build,
    live_tail.build,
    usage.build,
    auth.build,
    ratelimit.build,
    guard.build,
    budget.build,
    cache.build,
)

_UNKNOWN = ""  # chain key for names that are neither a route nor a model (they end in a 404)


class StageAssembly:
    """Chains per route name, rebuilt lazily when the runtime snapshot changes."""

    def __init__(self, deps: StageDeps, order: Sequence[StageFactory] = ORDER) -> None:
        self._deps = deps
        self._order = tuple(order)
        self._runtime: Runtime | None = None
        self._chains: dict[str, StageChain] = {}

    def invalidate(self) -> None:
        """Rebuild chains on next use (a stage's need changed without a reload: the live tail)."""
        self._runtime, self._chains = None, {}

    def chain(self, ctx: RequestContext) -> StageChain:
        rt = ctx.runtime
        if rt is not self._runtime:  # a reload: chains of the old snapshot stay with its requests
            self._runtime, self._chains = rt, {}
        name = ctx.requested
        chain = self._chains.get(name)
        if chain is None:
            if name not in rt.routes and name not in rt.models:
                name = _UNKNOWN  # a bounded cache: clients choose the names
            chain = self._chains.get(name) or self._build(rt, name)
            self._chains[name] = chain
        return chain

    def _build(self, rt: Runtime, name: str) -> StageChain:
        stages: list[Stage] = []
        for build in self._order:
            stage = build(rt, name, self._deps)
            if stage is not None:
                stages.append(stage)
        return StageChain(stages) if stages else EMPTY
