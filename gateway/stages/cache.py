"""Cache stage: answer repeated deterministic requests from the response cache.

Before: a request that may be cached (temperature 0 or `x-aimm-cache: force`, and no
`Cache-Control: no-store`) is looked up (unless `no-cache`); a hit short-circuits the call,
costs nothing and says `x-aimm-cache: hit` (streams replay it as a stream). After: a fresh,
complete answer is stored (a stream's chunks are collected by the chunk hook and put together).
With `cache.semantic`, a miss may still be answered by the most similar remembered prompt of the
same scope (embedding cosine ≥ threshold; `x-aimm-cache-similarity` says how close); each
embedding call is billed like any other (stages/side_calls.py).
In the chain only when `cache.enabled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from aimm_gateway.cache.assemble import assemble
from aimm_gateway.cache.embedder import Embedder, runtime_embedder
from aimm_gateway.cache.keys import cache_key, decide
from aimm_gateway.cache.response import CachedAnswer, ResponseCache
from aimm_gateway.cache.semantic import decode, encode, nearest, prompt_text, remember, scope_key
from aimm_gateway.canonical import ChatChunk, ChatCompletion
from aimm_gateway.config import CacheSettings
from aimm_gateway.runtime import Runtime
from aimm_gateway.stages.base import ChunkHook, Outcome, RequestContext, StageDeps
from aimm_gateway.stages.side_calls import SEMANTIC_CACHE_EMBEDDING, SideCalls

HIT_HEADER = "x-aimm-cache"
SIMILARITY_HEADER = "x-aimm-cache-similarity"  # semantic hits: how close the remembered prompt was


@dataclass(slots=True)
class _Pending:
    key: str
    chunks: list[ChatChunk] = field(default_factory=list)
    hit: CachedAnswer | None = None
    scope: str = ""  # semantic cache: the scope's index key
    vector: list[float] | None = None  # semantic cache: this prompt's embedding


def _collect(ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
    pending = ctx.scratch.get(CacheStage.name)
    if pending is not None and pending.hit is None:
        pending.chunks.append(chunk)
    return chunk


class CacheStage:
    name: ClassVar[str] = "cache"
    after_needs_scratch: ClassVar[bool] = True  # nothing to store unless `before` found it cacheable

    def __init__(
        self,
        cache: ResponseCache,
        settings: CacheSettings,
        embed: Embedder | None = None,
        side_calls: SideCalls | None = None,
    ) -> None:
        self.chunk_hook: ChunkHook | None = _collect
        # A store on Redis is awaited before the answer is sent (the same request again from the
        # caller, on any replica, is a hit); an in-process store runs right after the send.
        self.after_before_answer = not cache.in_process
        self._cache = cache
        self._settings = settings
        self._semantic = settings.semantic if embed is not None else None
        self._embed = embed
        self._side_calls = side_calls  # the embedding is billed: a usage row, counted in budgets

    async def before(self, ctx: RequestContext) -> ChatCompletion | None:
        lookup, store = decide(ctx.body, ctx.headers, self._settings)
        if not store:
            return None
        pending = _Pending(cache_key(ctx.requested, ctx.body))
        ctx.scratch[self.name] = pending
        if lookup:
            pending.hit = await self._cache.get(pending.key)
        if pending.hit is None and self._embed is not None:  # semantic: embed only past an exact miss
            pending.scope = scope_key(ctx.requested, ctx.body)
            embedding = await self._embed(prompt_text(ctx.body), ctx.request_id)
            if embedding is not None:
                pending.vector = embedding.vector
                if self._side_calls is not None:
                    await self._side_calls.charge(ctx, embedding, SEMANTIC_CACHE_EMBEDDING)
            if lookup and pending.vector is not None:
                pending.hit = await self._similar(ctx, pending)
        ctx.response_headers[HIT_HEADER] = "hit" if pending.hit is not None else "miss"
        return pending.hit.answer if pending.hit is not None else None

    async def _similar(self, ctx: RequestContext, pending: _Pending) -> CachedAnswer | None:
        assert self._semantic is not None and pending.vector is not None
        entries = decode(await self._cache.get_index(pending.scope))
        found = nearest(entries, pending.vector, self._semantic.threshold)
        if found is None:
            return None
        hit = await self._cache.get(found[0])
        if hit is not None:
            ctx.response_headers[SIMILARITY_HEADER] = f"{found[1]:.4f}"
        return hit

    async def after(self, ctx: RequestContext, outcome: Outcome) -> None:
        pending: _Pending | None = ctx.scratch.get(self.name)
        if pending is None or pending.hit is not None or not outcome.ok or outcome.model is None:
            return
        answer = outcome.response if outcome.response is not None else assemble(pending.chunks)
        if answer is None or any(c.get("finish_reason") == "content_filter" for c in answer.get("choices") or ()):
            return
        entry = CachedAnswer(outcome.model, outcome.provider or "", answer)
        stored = await self._cache.put(pending.key, entry, self._settings.ttl_s, self._settings.max_entry_bytes)
        if stored and self._semantic is not None and pending.vector is not None:
            entries = decode(await self._cache.get_index(pending.scope))
            entries = remember(entries, pending.key, pending.vector, self._semantic.max_entries)
            await self._cache.put_index(pending.scope, encode(entries), self._settings.ttl_s)


def cached_model(ctx: RequestContext) -> CachedAnswer | None:
    """The cache entry that answered this request, if one did (the usage stage records its model)."""
    pending: _Pending | None = ctx.scratch.get(CacheStage.name)
    return pending.hit if pending is not None else None


def build(rt: Runtime, name: str, deps: StageDeps) -> CacheStage | None:
    settings = rt.config.cache
    if not settings.enabled or deps.cost is None:
        return None
    embed = runtime_embedder(rt, settings.semantic.embedding_model) if settings.semantic is not None else None
    side_calls = SideCalls(deps.cost, name if name in rt.routes else None) if embed is not None else None
    return CacheStage(deps.cost.cache, settings, embed, side_calls)
