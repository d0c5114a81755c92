"""The streamed reply: SSE frames relayed in the request's own task, one small watcher per stream.

Starlette's StreamingResponse (for servers on ASGI spec < 2.4, which uvicorn reports) runs each
stream in an anyio task group: the relay in a new task, a disconnect listener in the request's
task, a cancel scope and two wrapper coroutines, all alive for the whole stream. Here the relay
runs in the request's task, and one plain asyncio task waits for the client to go away and then
cancels the relay; the body's `finally` blocks (upstream connection returned or closed, the
stream settled) run once, without being cancelled again. Frames with a `waiter()` (the
pass-through relay, `OpenAIFrames`) are waited for on that bare Future between frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, cast

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class Closable(Protocol):
    async def aclose(self) -> None: ...


class SSEResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None, source: Closable | None = None
    ) -> None:
        self.frames = frames
        self.source = source  # what `frames` reads from, closed after them: it may hold an upstream
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(receive, relay))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            self.raw_headers = []  # sent: not kept for the stream's life
            frames = self.frames
            waits = hasattr(frames, "waiter")  # not the bound method: one object less per stream
            while True:
                if waits and (pending := cast(Any, frames).waiter()) is not None:
                    # The stream's one wait, on a bare Future its upstream resolves: no coroutines
                    # per chunk alive across it for the cyclic collector to promote and walk.
                    await pending
                    del pending
                try:
                    frame = await frames.__anext__()
                except StopAsyncIteration:
                    break
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                del frame  # sent: not kept while the next one is awaited
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (watcher.done() and not watcher.cancelled() and watcher.result()):
                raise  # cancelled from outside (shutdown): not ours to swallow
            relay.uncancel()  # the client left: the relay ends here, normally
        finally:
            watcher.cancel()
            try:
                await _close(self.frames)
            finally:
                # A generator of frames closed before its first step closes nothing it reads from;
                # the source settles itself either way (the upstream closed, the request counted).
                if self.source is not None:
                    await self.source.aclose()


async def _cancel_on_disconnect(receive: Receive, relay: asyncio.Task[object]) -> bool:
    while (await receive())["type"] != "http.disconnect":
        pass
    if relay.done():
        return False
    relay.cancel()
    return True


async def _close(frames: AsyncIterator[bytes]) -> None:
    aclose = getattr(frames, "aclose", None)
    if aclose is not None:
        await aclose()
