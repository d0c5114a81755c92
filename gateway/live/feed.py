"""The ticker behind the `metrics`, `models` and `alerts` channels.

Runs only while someone is subscribed (the hub tells it when the count changes): every tick it
diffs model status (breaker, enablement, availability) against the last tick and publishes the
changes, and once per `metrics_interval_s` publishes a snapshot. Budget thresholds (the budget
enforcer's hook) and reload failures (the config watcher) are published when they happen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from typing import Any, Protocol

from aimm_gateway.budget.alerts import ThresholdEvent
from aimm_gateway.live import events
from aimm_gateway.live.hub import LiveHub, Subscriber, encode

log = logging.getLogger("aimm.gateway.live")

TICK_S = 0.25  # how soon a breaker or status change reaches subscribers


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
        hub.on_count_change(self._count_changed)

    def keep_running(self) -> None:
        """Tick whether or not anyone here is subscribed (the fleet relay is on)."""
        self._always = True
        self._count_changed(self.hub.count)

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
        if now >= self._next_metrics and self.hub.subscribers("metrics"):
            self._next_metrics = now + self.metrics_interval_s
            self.hub.publish("metrics", self._snapshot(now))

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
            sub.offer(encode("metrics", events.metrics_event(summary, self._sources.model_health(), rps)))
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
