"""The fleet-wide live feed: through the state layer's pub/sub (Redis) when there is one.

Each process publishes its own model changes, alerts and (while a console anywhere watches it)
sampled request tail, tagged with its `pod`, and listens for everyone's, handing other processes'
messages to its local subscribers. Each also publishes its per-second `metrics` snapshot, which
receivers do not pass on as is: the feed merges the fleet's snapshots (fleet.py) for its own
subscribers. Sending is off the caller's path (a bounded outbox drained by a task); a state
layer that is down loses relayed messages, never blocks anything, and the listener reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from aimm_gateway.live.hub import RELAYED, LiveHub
from aimm_gateway.state.base import StateStore, StateUnavailable

log = logging.getLogger("aimm.gateway.live")

TOPIC = "live:"  # state-layer channel prefix (the store adds its own key prefix)
OUTBOX = 1024
RECONNECT_S = 1.0


def pod_name() -> str:
    """This process in fleet events: the pod's hostname, the pid (workers), and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class LiveRelay:
    def __init__(
        self,
        hub: LiveHub,
        store: StateStore,
        on_metrics: Callable[[str, dict[str, Any]], None],
        pod: str | None = None,
    ) -> None:
        self._hub = hub
        self._store = store
        self._on_metrics = on_metrics  # a peer's snapshot: (its pod, the event) to the fleet view
        self.pod = pod or pod_name()
        self._outbox: deque[tuple[str, str]] = deque(maxlen=OUTBOX)
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.lost = 0  # relayed messages the state layer did not take

    def start(self) -> None:
        self._hub.pod, self._hub.relay = self.pod, self.forward
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send(), name="live-relay-send"), loop.create_task(self._listen())]

    def forward(self, channel: str, message: str) -> None:
        self._outbox.append((channel, message))
        self._ready.set()

    async def _send(self) -> None:
        header = f"{self.pod}\n".encode()
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._outbox:
                channel, message = self._outbox.popleft()
                try:
                    await self._store.publish(TOPIC + channel, header + message.encode())
                except StateUnavailable:
                    self.lost += 1

    async def _listen(self) -> None:
        topics = [TOPIC + c for c in (*RELAYED, "metrics")]
        own = self.pod.encode()
        while True:
            try:
                async for topic, data in self._store.subscribe(topics):
                    sender, _, body = data.partition(b"\n")
                    if sender != own:
                        self._receive(topic.removeprefix(TOPIC), sender.decode(), body)
            except StateUnavailable as exc:
                log.warning("live relay: state layer unavailable (%s); retrying", exc)
            await asyncio.sleep(RECONNECT_S)

    def _receive(self, channel: str, sender: str, body: bytes) -> None:
        if channel != "metrics":
            self._hub.deliver(channel, body.decode())
            return
        try:
            self._on_metrics(sender, orjson.loads(body))
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):  # a peer's bad message ends nothing
            log.warning("live relay: unreadable metrics snapshot from %s", sender)

    async def stop(self) -> None:
        self._hub.relay = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
