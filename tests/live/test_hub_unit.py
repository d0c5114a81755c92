"""The hub, the feed's event builders and the tail stage, without a socket."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from aimm_gateway.live import events
from aimm_gateway.live.hub import STOP, LiveHub
from aimm_gateway.stages.assembly import StageAssembly
from aimm_gateway.stages.base import StageDeps
from tests.unit.stage_fixtures import Deps, context, mock_model, runtime


def hub(**kw: Any) -> LiveHub:
    return LiveHub(lambda ctx, outcome: {"id": ctx}, **kw)


def drain(sub: Any) -> list[dict[str, Any]]:
    out = []
    while not sub.queue.empty():
        item = sub.queue.get_nowait()
        if item != STOP:
            out.append(orjson.loads(item))
    return out


async def test_publish_reaches_only_that_channel_and_encodes_once() -> None:
    h = hub()
    a, b = h.join(["metrics"]), h.join(["models"])
    assert h.publish("metrics", {"type": "snapshot", "n": 1}) == 1
    assert drain(a) == [{"channel": "metrics", "type": "snapshot", "n": 1}] and drain(b) == []
    assert h.publish("alerts", {"type": "alert"}) == 0


async def test_a_full_queue_drops_that_subscriber_only() -> None:
    h = hub(queue_size=3)
    slow, fine = h.join(["metrics"]), h.join(["metrics"])
    for i in range(3):
        h.publish("metrics", {"i": i})
    drain(fine)
    h.publish("metrics", {"i": 3})  # the slow one is now 4 behind
    assert slow.dropped is not None and "too slow" in slow.dropped and slow.close_code == 1013
    assert slow.queue.get_nowait() == STOP  # backlog freed, the writer is told to close
    assert h.count == 1 and h.dropped_total == 1 and drain(fine) == [{"channel": "metrics", "i": 3}]


async def test_unknown_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="gossip"):
        hub().join(["gossip"])


async def test_request_tail_only_while_watched_and_sampled() -> None:
    h = hub(sample_rate=0.5)
    h.offer_request("ignored", None)
    assert not h._tail  # nobody watches: nothing kept
    flips: list[bool] = []
    h.on_tail_change(lambda: flips.append(h.requests_subscribed))
    sub = h.join(["requests"])
    for i in range(10):
        h.offer_request(i, None)
    assert len(h._tail) == 5  # one in two
    h.leave(sub)
    assert flips == [True, False] and not h._tail


async def test_tail_stage_joins_chains_only_while_watched() -> None:
    deps = Deps()
    h = hub()
    assembly = StageAssembly(StageDeps(deps.metrics, deps.stats, live=h))
    h.on_tail_change(assembly.invalidate)
    rt = runtime([mock_model("m")])
    ctx = context(rt, "m")
    assert "live_tail" not in [s.name for s in assembly.chain(ctx).stages]
    sub = h.join(["requests"])
    assert "live_tail" in [s.name for s in assembly.chain(ctx).stages]
    h.leave(sub)
    assert "live_tail" not in [s.name for s in assembly.chain(ctx).stages]


def test_model_changes_name_each_changed_field() -> None:
    before = {"a": {"enabled": True, "circuit_state": "closed", "available": True}, "gone": {"enabled": True}}
    after = {"a": {"enabled": True, "circuit_state": "open", "available": False}, "new": {"enabled": True}}
    changes = {c["model"]: c for c in events.model_changes(before, after)}
    assert changes["a"]["changed"] == ["available", "circuit_state"]
    assert changes["a"]["previous"] == {"available": True, "circuit_state": "closed"}
    assert changes["gone"]["changed"] == ["removed"] and changes["new"]["changed"] == ["added"]
    assert [a["model"] for a in events.breaker_alerts(list(changes.values()))] == ["a"]
    assert events.model_changes(after, after) == []
