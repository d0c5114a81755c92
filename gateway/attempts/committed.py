"""A committed stream's chunks, whose cleanup runs when they are closed, asked for or not.

An async generator closed before its first step runs no `finally`: its body never began. A
committed stream's cleanup (the upstream closed, the attempt settled, the `after` hooks, the
request no longer in flight) lives in such a `finally`, and a response can end before it asks
for its first chunk: the client gone at its first `send` (servers such as Hypercorn and Granian
raise there), a shutdown's cancel. `Committed` runs the cleanup itself in that case.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

Cleanup = Callable[[], Awaitable[None]]


class Committed:
    """`chunks` (an async generator whose `finally` cleans up) and `unstarted`, the same cleanup
    for when it is closed before its first chunk was asked for. One attribute write per chunk."""

    __slots__ = ("_chunks", "_unstarted")

    def __init__(self, chunks: AsyncGenerator[Any, None], unstarted: Cleanup) -> None:
        self._chunks = chunks
        self._unstarted: Cleanup | None = unstarted

    def __aiter__(self) -> Committed:
        return self

    def __anext__(self) -> Awaitable[Any]:
        self._unstarted = None  # started: its own `finally` cleans up from now on
        return self._chunks.__anext__()

    async def aclose(self) -> None:
        """Close the chunks: their `finally` runs if they started, else the cleanup runs here."""
        unstarted, self._unstarted = self._unstarted, None
        await self._chunks.aclose()
        if unstarted is not None:
            await unstarted()
