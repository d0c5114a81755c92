"""The `requests` channel of the live feed: hand each finished request to the hub.

Last in `after` order (first in ORDER), so the event sees the final outcome. In a route's chain
only while someone watches the live tail (the hub asks the assembly to rebuild its chains when
that changes), so unwatched it costs nothing; watched, one bounded deque append per request
(the event is built off the request path by the hub's fan-out task).
"""

from __future__ import annotations

from typing import ClassVar

from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.live.hub import LiveHub
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps


class LiveTail:
    name: ClassVar[str] = "live_tail"
    chunk_hook: ChunkHook | None = None
    has_before: ClassVar[bool] = False  # nothing to do before the call: the chain never calls it

    def __init__(self, hub: LiveHub) -> None:
        self._hub = hub

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        self._hub.offer_request(ctx, outcome)


def build(rt: Runtime, name: str, deps: StageDeps) -> LiveTail | None:
    if deps.live is None or not deps.live.requests_subscribed:
        return None
    return LiveTail(deps.live)
