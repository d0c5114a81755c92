"""Subscribers, channels and bounded fan-out. Knows no HTTP: the WebSocket route drains a
subscriber's queue onto its socket.

Two rules keep the gateway fast whatever the subscribers do:
- a subscriber has one bounded queue; when it is full the subscriber is dropped (`stop`:
  its backlog is freed and its writer told to close with 1013), never waited for;
- the request path only appends to one bounded deque (`offer_request`), and only when the
  `requests` channel has subscribers; a fan-out task turns entries into events off the path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import orjson

log = logging.getLogger("aimm.gateway.live")

CHANNELS = ("metrics", "models", "alerts", "requests")
# Fleet-wide with a shared state layer: delivered as they come. `metrics` is shared too, but
# merged before delivery (feed.py, fleet.py), so it is not relayed as is.
RELAYED = ("models", "alerts", "requests")
_BURST = 8  # fan-out yields to the writers after this many events of a burst
TAIL_BACKLOG = 1024  # request entries waiting for fan-out; the oldest go first in a burst

# A request-path entry becomes an event only in the fan-out task (off the request path).
RequestEntry = tuple[Any, Any]
EventBuilder = Callable[[Any, Any], dict[str, Any]]


STOP = ""  # the writer's cue to close (never a real message: those are JSON objects)


def encode(channel: str, event: dict[str, Any]) -> str:
    """One message as JSON text, encoded once for every subscriber."""
    return orjson.dumps({"channel": channel, **event}).decode()


class Subscriber:
    """One WebSocket's view: its channels and its bounded queue of encoded messages."""

    __slots__ = ("channels", "close_code", "dropped", "identity", "queue")

    def __init__(self, channels: Iterable[str], queue_size: int, identity: str = "") -> None:
        self.channels: set[str] = set(channels)
        # One slot more than the limit, so `stop` can always queue its STOP marker.
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size + 1)
        self.dropped: str | None = None  # why this subscriber ended (the close reason)
        self.close_code = 1000
        self.identity = identity

    def offer(self, message: str) -> bool:
        """Queue a message; False (and the subscriber is stopped with 1013) when it is too far behind."""
        if self.dropped is not None:
            return False
        if self.queue.qsize() >= self.queue.maxsize - 1:
            self.stop(f"too slow: more than {self.queue.maxsize - 1} messages behind", 1013)
            return False
        self.queue.put_nowait(message)
        return True

    def stop(self, reason: str, code: int) -> None:
        """End this subscriber: free its backlog and wake its writer with STOP (first reason wins)."""
        if self.dropped is None:
            self.dropped, self.close_code = reason, code
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(STOP)


class LiveHub:
    def __init__(
        self,
        build_request_event: EventBuilder,
        queue_size: int = 256,
        max_subscribers: int = 1000,
        sample_rate: float = 1.0,
    ) -> None:
        self._build = build_request_event
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self._sample_rate = sample_rate
        self._credit = 0.0
        self._by_channel: dict[str, set[Subscriber]] = {c: set() for c in CHANNELS}
        self._all: set[Subscriber] = set()
        self._tail: deque[RequestEntry] = deque(maxlen=TAIL_BACKLOG)
        self._tail_ready = asyncio.Event()
        self._fanout: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._tail_listeners: list[Callable[[], None]] = []
        self.requests_subscribed = False  # True while the tail is watched, here or (fleet) on a peer
        self.remote_tail = False  # a peer process has a console watching the tail (fleet mode)
        self.dropped_total = 0
        self.pod = ""  # set with the relay: names this process in fleet-wide events
        self.relay: Callable[[str, str], None] | None = None  # RELAYED channels go to the fleet too
        self.published_total = 0

    # -- settings (reloadable) -----------------------------------------------------------------

    def configure(self, queue_size: int, max_subscribers: int, sample_rate: float) -> None:
        """New limits apply to subscribers that join from now on (and sampling at once)."""
        self.queue_size, self.max_subscribers, self._sample_rate = queue_size, max_subscribers, sample_rate
        if self._by_channel["requests"]:
            self._refresh()

    def on_count_change(self, listener: Callable[[int], None]) -> None:
        """Call `listener(count)` whenever subscribers join or leave (the feed starts and stops)."""
        self._listeners.append(listener)

    def on_tail_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` when the live tail starts or stops being watched (stage chains are
        rebuilt then, so a route carries the tail stage only while someone watches)."""
        self._tail_listeners.append(listener)

    # -- subscribers -----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self._all)

    def subscribers(self, channel: str) -> int:
        return len(self._by_channel[channel])

    def full(self) -> bool:
        return len(self._all) >= self.max_subscribers

    def join(self, channels: Iterable[str], identity: str = "") -> Subscriber:
        sub = Subscriber((), self.queue_size, identity)
        self._all.add(sub)
        self.set_channels(sub, channels)
        self._notify()
        return sub

    def leave(self, sub: Subscriber) -> None:
        if sub not in self._all:
            return
        self._all.discard(sub)
        for channel in sub.channels:
            self._by_channel[channel].discard(sub)
        self._refresh()
        self._notify()

    def set_channels(self, sub: Subscriber, channels: Iterable[str]) -> None:
        wanted = set(channels)
        unknown = wanted.difference(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channel(s): {', '.join(sorted(unknown))}; choose from {', '.join(CHANNELS)}")
        for channel in sub.channels - wanted:
            self._by_channel[channel].discard(sub)
        for channel in wanted - sub.channels:
            self._by_channel[channel].add(sub)
        sub.channels = wanted
        self._refresh()

    def set_remote_tail(self, watched: bool) -> None:
        """A peer's console started or stopped watching the tail: feed it (or stop) from here too."""
        if watched != self.remote_tail:
            self.remote_tail = watched
            self._refresh()

    def _refresh(self) -> None:
        watched = (bool(self._by_channel["requests"]) or self.remote_tail) and self._sample_rate > 0
        if watched != self.requests_subscribed:
            self.requests_subscribed = watched
            for listener in self._tail_listeners:
                listener()
        if self.requests_subscribed and self._fanout is None:
            self._fanout = asyncio.get_running_loop().create_task(self._fan_out_requests(), name="live-requests")
        elif not self.requests_subscribed and self._fanout is not None:
            self._fanout.cancel()
            self._fanout = None
            self._tail.clear()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(len(self._all))

    # -- publishing --------------------------------------------------------------------------------

    def publish(self, channel: str, event: dict[str, Any]) -> int:
        """Encode once and queue for every subscriber of `channel` (and hand fleet-wide channels
        to the relay, when there is one); returns how many local subscribers got it."""
        relay = self.relay
        if relay is not None and channel in RELAYED:
            message = encode(channel, {**event, "pod": self.pod})
            if channel != "requests" or self.remote_tail:  # the tail goes out only while a peer watches
                relay(channel, message)
            return self.deliver(channel, message)
        if not self._by_channel[channel]:
            return 0
        return self.deliver(channel, encode(channel, event))

    def deliver(self, channel: str, message: str) -> int:
        """Queue an encoded message for this process's subscribers of `channel` (no relay)."""
        subs = self._by_channel[channel]
        if not subs:
            return 0
        delivered = 0
        for sub in tuple(subs):
            if sub.offer(message):
                delivered += 1
            else:
                self._drop(sub)
        self.published_total += 1
        return delivered

    def _drop(self, sub: Subscriber) -> None:
        self.dropped_total += 1
        log.warning("live feed: dropped subscriber %s (%s)", sub.identity or "?", sub.dropped)
        self.leave(sub)

    def offer_request(self, ctx: Any, outcome: Any) -> None:
        """From the request path: O(1), sampled, and only while `requests` has subscribers."""
        if not self.requests_subscribed:
            return
        rate = self._sample_rate
        if rate < 1.0:
            self._credit += rate
            if self._credit < 1.0:
                return
            self._credit -= 1.0
        self._tail.append((ctx, outcome))
        if not self._tail_ready.is_set():
            self._tail_ready.set()

    async def _fan_out_requests(self) -> None:
        tail, ready = self._tail, self._tail_ready
        while True:
            await ready.wait()
            ready.clear()
            sent = 0
            while tail:
                ctx, outcome = tail.popleft()
                try:
                    event = self._build(ctx, outcome)
                except Exception:  # one odd request must not stop the tail
                    log.exception("live feed: could not describe request %s", getattr(ctx, "request_id", "?"))
                    continue
                self.publish("requests", {"type": "request", "data": event})
                sent += 1
                if sent % _BURST == 0:
                    await asyncio.sleep(0)  # writers drain between slices of a burst

    async def close(self) -> None:
        if self._fanout is not None:
            self._fanout.cancel()
            await asyncio.gather(self._fanout, return_exceptions=True)
            self._fanout = None
        for sub in tuple(self._all):
            sub.stop("gateway shutting down", 1001)
            self.leave(sub)
