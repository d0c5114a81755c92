"""Coalesce concurrent reconcile requests per key (namespace).

Many events can ask for the same namespace at once (startup resumes every object; a `kubectl
apply -f dir/` changes ten). Requests arriving while a run is in progress share one follow-up
run, which starts after the current one and so sees every change that triggered it. Runs for one
key never overlap; every caller awaits a run that started after its request, and gets its error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Slot:
    running: asyncio.Task[None] | None = None
    pending: asyncio.Future[None] | None = None


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved: callers may all have gone away


class Coalescer(Generic[K]):
    def __init__(self, run: Callable[[K], Awaitable[None]]) -> None:
        self._run = run
        self._slots: dict[K, _Slot] = {}
        self.runs = 0  # how many runs started (observability, tests)

    async def request(self, key: K) -> None:
        """Return once a run for `key` that started after this call has finished."""
        await asyncio.shield(self.kick(key))

    def kick(self, key: K) -> asyncio.Future[None]:
        """Ask for a run of `key` without waiting: the returned future (its outcome already marked
        retrieved) completes when a run that started after this call has finished."""
        loop = asyncio.get_running_loop()
        slot = self._slots.setdefault(key, _Slot())
        if slot.running is None:
            fut: asyncio.Future[None] = loop.create_future()
            fut.add_done_callback(_consume)
            slot.running = asyncio.create_task(self._drive(key, slot, fut))
        else:
            if slot.pending is None:
                slot.pending = loop.create_future()
                slot.pending.add_done_callback(_consume)
            fut = slot.pending
        return fut

    async def _drive(self, key: K, slot: _Slot, fut: asyncio.Future[None]) -> None:
        while True:
            self.runs += 1
            try:
                await self._run(key)
            except asyncio.CancelledError:
                fut.cancel()
                if slot.pending is not None:
                    slot.pending.cancel()
                self._slots.pop(key, None)
                raise
            except Exception as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(None)
            if slot.pending is None:
                slot.running = None
                self._slots.pop(key, None)
                return
            fut, slot.pending = slot.pending, None

    def busy(self, key: K) -> bool:
        return key in self._slots
