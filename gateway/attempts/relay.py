"""A committed pass-through stream relayed as bytes: one object per stream, one call per upstream read.

For a route without chunk hooks whose upstream speaks the client's format, the pipeline hands the
client's framing this relay instead of a chain of generators (upstream bytes → SSE events → JSON
dicts → hooks → JSON again). It reads the upstream's events in batches (every event one socket
read completed), decodes only an event that carries a non-null `usage` (the final one, to settle
cost), and settles the attempt and the stages when the stream ends, fails or is abandoned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson

from aimm_gateway.canonical import Usage
from aimm_gateway.errors import UpstreamError
from aimm_gateway.providers.raw_sse import Batch, RawEvents, spans_naming

Ending = Literal["ok", "failed", "cancelled"]
# How the stream ended, its usage, the failure (when "failed"): the pipeline's settle step.
Finish = Callable[[Ending, Usage, UpstreamError | None], Awaitable[None]]

_USAGE = b'"usage"'
_NO_USAGE = b'"usage":null'


class ByteRelay:
    """`read` until it returns None; `aclose` in every case (settles once, whatever happened)."""

    __slots__ = ("_finish", "_first", "_gap", "_last", "_upstream", "_usage", "ended")

    def __init__(self, upstream: RawEvents, first: Batch, gap: Callable[[float], None], finish: Finish) -> None:
        self._upstream = upstream
        self._first: Batch | None = first
        self._gap = gap  # the inter-chunk histogram: one gap per upstream read that carried events
        self._finish = finish
        self._usage: Usage | None = None  # made when the usage chunk comes
        self._last = time.perf_counter()
        self.ended = False

    @property
    def complete(self) -> bool:
        """`[DONE]` was read: the next `read` settles and returns None without waiting."""
        return self._upstream.done

    def waiter(self) -> asyncio.Future[Any] | None:
        """None, or a Future to await before `read` returns without waiting (`RawEvents.waiter`)."""
        return None if self._first is not None or self.ended else self._upstream.waiter()

    async def read(self) -> Batch | None:
        """The next batch of event payloads (OpenAI chunk JSON, as the upstream sent it); None at
        the end, after settling. An UpstreamError is raised after the failure is settled."""
        batch = self._first
        if batch is not None:
            self._first = None
        else:
            try:
                batch = await self._upstream.read()
            except UpstreamError as exc:
                await self._end("failed", exc)
                raise
            if batch is None:
                await self._end("ok")
                return None
            now = time.perf_counter()
            self._gap(now - self._last)
            self._last = now
        self._note_usage(batch)
        return batch

    def _note_usage(self, batch: Batch) -> None:
        """Keep the usage a chunk of `batch` carries (the final chunk, to settle cost)."""
        joined = batch.joined
        # Every `"usage"` the start of a `"usage":null` (OpenAI's in each chunk): no usage here, found
        # by two scans of the joined bytes, not two per event; else only the events naming it are cut out.
        named_places = joined.count(_USAGE) - joined.count(_NO_USAGE) if _USAGE in joined else 0
        if not named_places:
            return
        if batch.split_exactly:
            named = [joined[a:b] for a, b in spans_naming(joined, _USAGE, unless=_NO_USAGE, limit=named_places)]
        else:
            named = batch.payloads()
        for data in named:
            if _USAGE in data and _NO_USAGE not in data:  # the usage chunk (or a spelling we must read)
                usage = orjson.loads(data).get("usage")
                if usage:
                    self._usage = Usage.from_openai(usage)

    async def aclose(self) -> None:
        """Settle as abandoned (the client went away) unless the stream already ended."""
        if not self.ended:
            await self._end("cancelled")

    async def _end(self, how: Ending, exc: UpstreamError | None = None) -> None:
        self.ended = True
        try:
            await self._upstream.aclose()
        finally:
            await self._finish(how, self._usage if self._usage is not None else Usage(), exc)
