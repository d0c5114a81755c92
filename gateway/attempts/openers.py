"""The one place plain and streamed calls differ: how an attempt opens and what counts as an answer.

Plain: call the upstream and settle the answer at once. Stream: open the upstream and wait for
its first chunk (failover stays free until then); the answer is settled when the stream ends.
Everything else (order, retries, fallbacks, hedges, breakers) is the loop's, in pipeline.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aimm_gateway.canonical import ChatChunk, ChatCompletion, Usage
from aimm_gateway.config import ModelConfig
from aimm_gateway.errors import UpstreamError, UpstreamTimeout
from aimm_gateway.providers.base import UpstreamCall
from aimm_gateway.providers.raw_sse import Batch, RawEvents
from aimm_gateway.stages.base import AttemptRecord
from aimm_gateway.telemetry import TRACE_KEY

if TYPE_CHECKING:
    from aimm_gateway.telemetry.tracing import RequestTrace

from .ledger import Ledger
from .planning import Attempting

log = logging.getLogger("aimm.gateway")
T = TypeVar("T")


@dataclass(slots=True)
class Won:
    """An attempt that answered (plain) or sent its first chunk (stream): from here on, the answer."""

    record: AttemptRecord
    model: ModelConfig
    reason: str = ""  # the route reason, fixed when the attempt won
    response: ChatCompletion | None = None  # plain: the settled answer
    usage: Usage | None = None  # plain: settled usage
    upstream: AsyncIterator[ChatChunk] | None = None  # stream: the rest of the chunks
    first: ChatChunk | None = None  # stream: the first chunk
    raw: RawEvents | None = None  # pass-through stream as bytes: the rest of the events
    first_raw: Batch | None = None  # pass-through stream as bytes: the first batch
    ttft: float = 0.0


class Opener(Protocol):
    async def open(self, r: Attempting, record: AttemptRecord, model: ModelConfig) -> Won:
        """Run one attempt to the point where it is the answer; raise UpstreamError otherwise."""
        ...

    async def discard(self, won: Won) -> None:
        """A second winner of a hedge race (both answered in the same tick)."""
        ...

    def refused(self, won: Won) -> bool:
        """Whether the answer is a content-policy refusal another model might not give."""
        ...


def upstream_call(r: Attempting, record: AttemptRecord, model: ModelConfig) -> UpstreamCall:
    route = r.route
    timeouts = route.timeouts if route is not None and route.timeouts is not None else model.timeouts
    ctx, name = r.ctx, record.model
    trace: RequestTrace | None = ctx.scratch.get(TRACE_KEY)  # None unless tracing is on
    headers = trace.attempt(record, model.upstream_model) if trace is not None else {}
    return UpstreamCall(model, r.req, ctx.body, ctx.runtime.api_key_values.get(name), timeouts, ctx.request_id, headers)


class PlainOpener:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def open(self, r: Attempting, record: AttemptRecord, model: ModelConfig) -> Won:
        response = await r.rt.providers[record.model].complete(upstream_call(r, record, model))
        usage = Usage.from_openai(response.get("usage"))
        self._ledger.succeeded(record, model, usage, None)
        return Won(record, model, response=response, usage=usage)

    async def discard(self, won: Won) -> None:
        return None  # already settled: a plain answer costs what it cost

    def refused(self, won: Won) -> bool:
        choices = (won.response or {}).get("choices") or ()
        for c in choices:  # a loop, not `all(generator)`: the usual answer says no at its first choice
            if c.get("finish_reason") != "content_filter":
                return False
        return bool(choices)


class StreamOpener:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def open(self, r: Attempting, record: AttemptRecord, model: ModelConfig) -> Won:
        call = upstream_call(r, record, model)
        upstream = r.rt.providers[record.model].stream(call)
        first = await self._first(call, record, model, lambda: anext(upstream, None), lambda: aclose(upstream))
        return Won(record, model, upstream=upstream, first=first, ttft=self._ttft(record))

    async def _first(
        self,
        call: UpstreamCall,
        record: AttemptRecord,
        model: ModelConfig,
        first: Callable[[], Awaitable[T | None]],
        close: Callable[[], Awaitable[None]],
    ) -> T:
        """The stream's first item (None: it was empty), its failures as UpstreamErrors;
        `close` runs unless it is returned."""
        try:
            # `first_byte_s` bounds the time to the first *chunk*, not only to the response
            # headers: an upstream that sends 200 and then stalls would otherwise hold the
            # request for `stream_idle_s` (and be served late) instead of failing over while
            # failover is still free, before anything reached the client.
            async with asyncio.timeout(call.timeouts.first_byte_s):
                item = await first()
        except TimeoutError:
            failure: UpstreamError = UpstreamTimeout(
                f"{model.provider} sent no stream chunk within {call.timeouts.first_byte_s}s"
            )
        except UpstreamError as exc:
            failure = exc
        except BaseException:
            await close()  # cancelled: a hedge loser, or the client went away
            raise
        else:
            if item is not None:
                return item
            failure = UpstreamError(f"{model.provider} returned an empty stream", kind="http")
        await close()
        raise failure

    def _ttft(self, record: AttemptRecord) -> float:
        ttft = time.perf_counter() - record.started
        self._ledger.metrics.series(record.model, record.provider).ttft.observe(ttft)
        return ttft

    async def discard(self, won: Won) -> None:
        if won.upstream is not None:
            await aclose(won.upstream)
        if won.raw is not None:
            await won.raw.aclose()
        self._ledger.cancelled(won.record)

    def refused(self, won: Won) -> bool:
        return False  # a stream is judged by its first chunk; a refusal shows only later


class RawStreamOpener(StreamOpener):
    """A stream whose upstream speaks the client's format (OpenAI SSE) relayed as bytes; an
    attempt at any other upstream (a translated one, in a mixed route) opens as decoded chunks."""

    async def open(self, r: Attempting, record: AttemptRecord, model: ModelConfig) -> Won:
        provider = r.rt.providers[record.model]
        stream_raw = getattr(provider, "stream_raw", None) if getattr(provider, "raw_stream", False) else None
        if stream_raw is None:
            return await super().open(r, record, model)
        call = upstream_call(r, record, model)
        raw: RawEvents = stream_raw(call)

        async def first() -> Batch | None:
            await raw.open()
            return await raw.read()

        batch = await self._first(call, record, model, first, raw.aclose)
        return Won(record, model, raw=raw, first_raw=batch, ttft=self._ttft(record))


async def aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken upstream must not mask the real error
            log.debug("error closing upstream stream", exc_info=True)
