"""The watch-fed object store and the burst hold of first NotSelected statuses (issue 15)."""

from __future__ import annotations

import json
from typing import Any

from aimm_operator.arrivals import Arrivals
from aimm_operator.objects import parse_model
from aimm_operator.reconcile import first_unselected
from aimm_operator.status import condition
from aimm_operator.store import Indexer, ObjectStore
from tests.unit.operator_fixtures import body, gw, model


def _at(raw: dict[str, Any], rv: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    raw["metadata"]["resourceVersion"] = str(rv)
    if status is not None:
        raw["status"] = status
    return raw


def _store(events: dict[str, list[dict[str, Any]]]) -> ObjectStore:
    """A store fed the way the watch feeds it: one ADDED event per object."""
    store = ObjectStore()
    for kind, bodies in events.items():
        for raw in bodies:
            store.watched(kind, "ADDED", raw)
    return store


def test_indexer_parses_and_keeps_specs_that_do_not_parse() -> None:
    index = Indexer()
    good = index.parse("AIModel", model("m"), "ns")
    assert good.name == "m" and good.namespace == "ns" and good.spec is not None
    bad = index.parse("AIModel", body("AIModel", "x", {"provider": 42}), "ns")
    assert bad.spec is None and bad.spec_error
    assert index.changes == {"ns": 2}


def test_snapshot_is_one_namespace_sorted_by_name() -> None:
    other = body("AIModel", "a", {"provider": "mock", "model": "a"}, ns="elsewhere")
    store = _store({"AIModel": [model("b"), model("a"), other], "AIGateway": [gw()]})
    snap = store.snapshot("ns")
    assert [m.name for m in snap.models] == ["a", "b"]
    assert [g.name for g in snap.gateways] == ["gw"] and snap.policies == () and snap.budgets == ()
    assert [m.namespace for m in store.objects("AIModel", "elsewhere")] == ["elsewhere"]


def test_a_deletion_leaves_the_store_and_moves_the_change_count() -> None:
    store = _store({"AIModel": [model("a"), model("b")]})
    before = store.changes("ns")
    store.watched("AIModel", "DELETED", model("a"))
    assert [m.name for m in store.objects("AIModel", "ns")] == ["b"] and store.changes("ns") > before
    store.watched("AIModel", "DELETED", model("b"))
    assert store.objects("AIModel", "ns") == () and len(store) == 0
    store.watched("AIModel", "DELETED", model("b"))  # twice (a relist after a missed watch event): harmless
    assert len(store) == 0


def test_a_written_status_stands_in_until_the_watch_delivers_it() -> None:
    ready = {"conditions": [condition("Ready", True, "Accepted", "in gw", 1)]}
    store = _store({"AIModel": [_at(model("m"), 10)]})
    indexed = store.objects("AIModel", "ns")[0]
    store.wrote(indexed, _at(model("m"), 12, ready))
    assert store.objects("AIModel", "ns")[0].status == ready and store.pending() == 1
    store.wrote(indexed, _at(model("m"), 11, {}))  # an older answer arriving late changes nothing
    assert store.objects("AIModel", "ns")[0].status == ready
    store.watched("AIModel", "MODIFIED", _at(model("m"), 12, ready))  # the watch caught up
    assert store.objects("AIModel", "ns")[0].resource_version == 12
    assert store.pending() == 0
    store.wrote(indexed, None)  # the object was gone: nothing recorded
    assert store.pending() == 0


def test_a_burst_holds_until_quiet_and_never_longer_than_the_cap() -> None:
    now = [0.0]
    arrivals = Arrivals(quiet_s=2.0, max_hold_s=5.0, clock=lambda: now[0])
    assert arrivals.holding("ns") == 0
    arrivals.arrived("ns")
    assert arrivals.holding("ns") == 2.0
    for t in (1.0, 2.5, 4.0):  # arrivals keep coming: the hold extends up to the cap
        now[0] = t
        arrivals.arrived("ns")
    now[0] = 4.5
    assert arrivals.holding("ns") == 0.5  # capped at first + 5 s, not last + 2 s
    assert arrivals.holding("other") == 0
    now[0] = 5.0
    assert arrivals.holding("ns") == 0
    now[0] = 10.0
    arrivals.arrived("ns")  # after a quiet spell a new burst starts its own cap
    now[0] = 11.0
    assert arrivals.holding("ns") == 1.0


def test_runs_are_paced_during_a_burst_and_start_at_once_outside_one() -> None:
    now = [0.0]
    arrivals = Arrivals(quiet_s=2.0, max_hold_s=30.0, pace_s=0.5, clock=lambda: now[0])
    arrivals.run_started("ns")
    assert arrivals.run_delay("ns") == 0  # no burst: a run is never held back
    arrivals.arrived("ns")
    assert arrivals.run_delay("ns") == 0  # the burst's first run starts at once
    arrivals.run_started("ns")
    now[0] = 0.2
    arrivals.arrived("ns")
    assert arrivals.run_delay("ns") == 0.3  # the next one waits for the rest of the pace
    assert arrivals.run_delay("other") == 0
    now[0] = 0.6
    assert arrivals.run_delay("ns") == 0
    arrivals.run_started("ns")
    now[0] = 3.0  # quiet for 2 s: the burst is over, the next run starts at once
    assert arrivals.run_delay("ns") == 0


def test_only_a_first_not_selected_status_is_held() -> None:
    waiting = {"conditions": [condition("Ready", False, "NotSelected", "no AIGateway", 1)]}
    accepted = {"conditions": [condition("Ready", True, "Accepted", "in gw", 1)]}
    new = parse_model(model("m"))
    assert first_unselected((new, waiting, []))
    assert not first_unselected((new, accepted, []))
    seen_before = parse_model(_at(model("m"), 3, accepted))
    assert not first_unselected((seen_before, waiting, []))  # leaving a gateway is news: written now


def test_a_status_event_reuses_the_parsed_spec_until_the_generation_moves() -> None:
    index = Indexer()
    first = index.parse("AIModel", model("m"), "ns")
    ready = {"conditions": [condition("Ready", True, "Accepted", "in gw", 1)]}
    again = index.parse("AIModel", {**model("m"), "status": ready}, "ns")
    assert again.spec is first.spec and again.status == ready  # a status write: no new validation
    edited = model("m", weight=7)
    edited["metadata"]["generation"] = 2
    moved = index.parse("AIModel", edited, "ns")
    assert moved.spec is not first.spec and moved.spec is not None and moved.spec.weight == 7
    bad = body("AIModel", "m", {"provider": 42}, generation=3)
    assert index.parse("AIModel", bad, "ns").spec_error  # an invalid new spec is not masked
    assert len(index) == 1
    ObjectStore(index).forget("uid-m")
    assert len(index) == 0  # a deleted object's spec is dropped with it


def test_indexed_statuses_share_their_strings() -> None:
    """Each watch event decodes its own copy of every string (as json.loads does here)."""
    index = Indexer()
    ready = {"conditions": [condition("Ready", True, "Accepted", "in the config of AIGateway(s) " + "gw", 1)]}
    decoded = [json.loads(json.dumps(ready)) for _ in range(2)]
    assert decoded[0]["conditions"][0]["message"] is not decoded[1]["conditions"][0]["message"]
    a, b = (index.parse("AIModel", {**model(n), "status": st}, "ns") for n, st in zip("ab", decoded, strict=True))
    msg_a, msg_b = a.conditions[0]["message"], b.conditions[0]["message"]
    assert msg_a == msg_b and msg_a is msg_b
    assert a.status == ready
