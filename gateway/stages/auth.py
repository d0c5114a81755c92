"""Authorisation inside the request path: a key scoped to some models/routes may use only those.

Authentication itself runs before the body is read (api/access.py), so an unauthenticated
client never makes the gateway parse a body; this stage sees the requested name.
"""

from __future__ import annotations

from typing import ClassVar

from aimm_gateway.canonical import ChatCompletion
from aimm_gateway.errors import Forbidden
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps


class ModelScope:
    name: ClassVar[str] = "auth"
    chunk_hook: ChunkHook | None = None
    has_after: ClassVar[bool] = False  # nothing to settle: the chain never calls `after`

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        identity = ctx.identity
        if identity is not None and not identity.may_use(ctx.requested):
            raise Forbidden(f"key {identity.name!r} may not use {ctx.requested!r}", code="model_not_allowed")
        return None

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        return None


_SCOPE = ModelScope()


def build(rt: Runtime, name: str, deps: StageDeps) -> ModelScope | None:
    # Store keys (created over the API) may be scoped at any time, so every authenticated route checks.
    return _SCOPE if rt.config.auth.enabled else None
