"""The ticker behind the `metrics`, `models` and `alerts` channels.

Runs only while someone is subscribed (the hub tells it when the count changes): every tick it
diffs model status (breaker, enablement, availability) against the last tick and publishes the
changes, and once per `metrics_interval_s` publishes a snapshot. Budget thresholds (the budget
enforcer's hook) and reload failures (the config watcher) are published when they happen.

In a fleet (`join_fleet`, with the relay) it ticks whether or not anyone here is subscribed: every
interval it shares its own snapshot with the other processes (with how many consoles here watch
the request tail), and its own subscribers get the fleet's merged snapshot (fleet.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from aimm_gateway.budget.alerts import ThresholdEvent
from aimm_gateway.live import events
from aimm_gateway.live.fleet import FleetView
from aimm_gateway.live.hub import LiveHub, Subscriber, encode

log = logging.getLogger("aimm.gateway.live")

TICK_S = 0.25  # how soon a breaker or status change reaches subscribers
STALE_INTERVALS = 3  # a peer silent for this many metrics intervals (at least STALE_MIN_S) is out
STALE_MIN_S = 3.0


class FeedSources(Protocol):
    """What the feed reads (the Gateway provides it)."""

    def model_health(self) -> dict[str, dict[str, Any]]: ...

    def live_summary(self) -> dict[str, Any]: ...


class LiveFeed:
    def __init__(self, hub: LiveHub, sources: FeedSources, metrics_interval_s: float = 1.0) -> None:
        self.hub = hub
        self._sources = sources
        self.metrics_interval_s = metrics_interval_s
        self._task: asyncio.Task[None] | None = None
        self._health: dict[str, dict[str, Any]] = {}
        self._last_total: tuple[float, int] | None = None
        self._next_metrics = 0.0
        self._always = False  # with a fleet relay, this pod's changes matter to other pods' consoles
        self.fleet: FleetView | None = None
        self._share: Callable[[str, str], None] | None = None  # to the other processes (the relay)
        hub.on_count_change(self._count_changed)

    def join_fleet(self, pod: str, share: Callable[[str, str], None]) -> None:
        """Tick whether or not anyone here is subscribed, share snapshots, merge the fleet's."""
        self.fleet, self._share = FleetView(pod), share
        self._always = True
        self._count_changed(self.hub.count)

    @property
    def stale_after_s(self) -> float:
        return max(STALE_MIN_S, STALE_INTERVALS * self.metrics_interval_s)

    def peer_snapshot(self, pod: str, snapshot: dict[str, Any]) -> None:
        """Another process's snapshot (the relay's listener): kept for the merge."""
        if self.fleet is not None:
            now = time.monotonic()
            self.fleet.receive(pod, snapshot, now)
            self.hub.set_remote_tail(self.fleet.tail_watched(now, self.stale_after_s))

    def _count_changed(self, count: int) -> None:
        wanted = bool(count) or self._always
        if wanted and self._task is None:
            self._baseline()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="live-feed")
        elif not wanted and self._task is not None:
            self._task.cancel()
            self._task = None

    def _baseline(self) -> None:
        """What 'no change' means when the first subscriber arrives."""
        self._health = self._sources.model_health()
        self._last_total = None
        self._next_metrics = 0.0

    async def _run(self) -> None:
        while True:
            try:
                self.tick(time.monotonic())
            except Exception:  # a bad tick must not end the feed
                log.exception("live feed tick failed")
            await asyncio.sleep(TICK_S)

    def tick(self, now: float) -> None:
        self.check_models()
        if now >= self._next_metrics and (self.hub.subscribers("metrics") or self.fleet is not None):
            self._next_metrics = now + self.metrics_interval_s
            snapshot = self._snapshot(now)
            if self.fleet is not None and self._share is not None:
                tail = self.hub.subscribers("requests")
                self._share("metrics", encode("metrics", {**snapshot, "pod": self.fleet.pod, "tail_watchers": tail}))
                self.hub.set_remote_tail(self.fleet.tail_watched(now, self.stale_after_s))
                snapshot = self.fleet.merge(snapshot, now, self.stale_after_s)
            self.hub.publish("metrics", snapshot)

    def check_models(self) -> None:
        """Publish what changed since the last look (also called at once after a config swap)."""
        if not self.hub.count and not self._always:
            return
        health = self._sources.model_health()
        changes = events.model_changes(self._health, health)
        self._health = health
        for change in changes:
            self.hub.publish("models", change)
        for alert in events.breaker_alerts(changes):
            self.hub.publish("alerts", alert)

    def _snapshot(self, now: float) -> dict[str, Any]:
        summary = self._sources.live_summary()
        event = events.metrics_event(summary, self._health, summary.get("requests_per_second", 0.0))
        total = event["data"]["requests_total"]
        if self._last_total is not None:
            at, seen = self._last_total
            event["data"]["requests_per_second"] = round((total - seen) / max(now - at, 1e-6), 3)
        self._last_total = (now, total)
        return event

    def welcome(self, sub: Subscriber, channels: Collection[str]) -> None:
        """Give a subscriber the current picture of `channels` at once, not after the next change."""
        if "metrics" in channels:
            summary = self._sources.live_summary()
            rps = summary.get("requests_per_second", 0.0)
            snapshot = events.metrics_event(summary, self._sources.model_health(), rps)
            if self.fleet is not None:
                snapshot = self.fleet.merge(snapshot, time.monotonic(), self.stale_after_s)
            sub.offer(encode("metrics", snapshot))
        if "models" in channels:
            sub.offer(encode("models", {"type": "status", "models": self._sources.model_health()}))

    def budget_threshold(self, event: ThresholdEvent) -> None:
        """The budget enforcer's hook: a threshold crossed, published to `alerts` at once."""
        self.hub.publish("alerts", events.budget_alert(event))

    def alert(self, kind: str, level: str, message: str, **details: Any) -> None:
        """Publish an alert now (config reload failures come from the watcher, not a tick)."""
        self.hub.publish("alerts", events.alert(kind, level, message, **details))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
