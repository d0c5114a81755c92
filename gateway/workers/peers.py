"""Workers answer each other over unix sockets, so any worker can serve a pod-wide view.

Each worker listens on `<dir>/worker-<index>.sock`. A peer sends one line, the path of a
view (`/metrics`, `/api/v1/stats`), and gets `<pid>\n` and that worker's own body, then EOF.
The worker that receives a request for a merged view asks every other worker concurrently (a
dead or restarting one is left out of that answer) and merges the bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("aimm.gateway.workers")

LocalView = Callable[[str], Awaitable[bytes]]  # path -> this worker's own body for it
PEER_TIMEOUT_S = 2.0


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"worker-{index}.sock"


class Peers:
    def __init__(self, directory: Path, index: int, count: int, local: LocalView, paths: frozenset[str]) -> None:
        self._directory = directory
        self._index = index
        self._count = count
        self._local = local
        self._paths = paths
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        path = socket_path(self._directory, self._index)
        path.unlink(missing_ok=True)  # left by this slot's previous (dead) worker
        self._server = await asyncio.start_unix_server(self._answer, path=str(path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = (await reader.readline()).strip().decode()
            if path in self._paths:
                writer.write(b"%d\n" % os.getpid() + await self._local(path))
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def gather(self, path: str) -> tuple[dict[int, bytes], dict[int, int]]:
        """Every live worker's body for `path` (this one's included) and their pids, by worker index."""
        others = [i for i in range(self._count) if i != self._index]
        local = asyncio.ensure_future(self._local(path))
        answers = await asyncio.gather(*(self._ask(i, path) for i in others))
        bodies: dict[int, bytes] = {self._index: await local}
        pids = {self._index: os.getpid()}
        for i, answer in zip(others, answers, strict=True):
            if answer is not None:
                pids[i], bodies[i] = answer
        return bodies, pids

    async def _ask(self, index: int, path: str) -> tuple[int, bytes] | None:
        try:
            async with asyncio.timeout(PEER_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(str(socket_path(self._directory, index)))
                writer.write(path.encode() + b"\n")
                data = await reader.read()
                writer.close()
        except (OSError, TimeoutError) as exc:
            log.debug("worker %d did not answer for %s: %s", index, path, exc)
            return None
        pid, _, body = data.partition(b"\n")
        return (int(pid), body) if pid.isdigit() else None
