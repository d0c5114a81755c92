"""The watch-fed object store (kopf indices) and the burst hold of first NotSelected statuses (issue 15)."""

from __future__ import annotations

from typing import Any

from aimm_operator.arrivals import Arrivals
from aimm_operator.objects import Obj, parse_model
from aimm_operator.reconcile import first_unselected
from aimm_operator.status import condition
from aimm_operator.store import INDEXED, ObjectStore, indexer
from tests.unit.operator_fixtures import body, gw, model


def _at(raw: dict[str, Any], rv: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    raw["metadata"]["resourceVersion"] = str(rv)
    if status is not None:
        raw["status"] = status
    return raw


def _store(objs: dict[str, list[Obj[Any]]]) -> ObjectStore:
    """kopf hands handlers its indices as `{index id: {namespace: values}}`; the same shape here."""
    indices: dict[str, dict[str, list[Obj[Any]]]] = {index_id: {} for _, index_id in INDEXED.values()}
    for kind, values in objs.items():
        for obj in values:
            indices[INDEXED[kind][1]].setdefault(obj.namespace, []).append(obj)
    return ObjectStore(indices)


def test_indexer_keys_by_namespace_and_keeps_specs_that_do_not_parse() -> None:
    index = indexer("AIModel")
    good = index(body=model("m"), namespace="ns")
    assert list(good) == ["ns"] and good["ns"].name == "m" and good["ns"].spec is not None
    bad = index(body=body("AIModel", "x", {"provider": 42}), namespace="ns")["ns"]
    assert bad.spec is None and bad.spec_error
    assert index(body=model("m"), namespace=None) == {}


def test_snapshot_is_one_namespace_sorted_by_name() -> None:
    other = body("AIModel", "a", {"provider": "mock", "model": "a"}, ns="elsewhere")
    store = _store(
        {
            "AIModel": [parse_model(model("b")), parse_model(model("a")), parse_model(other)],
            "AIGateway": [indexer("AIGateway")(body=gw(), namespace="ns")["ns"]],
        }
    )
    snap = store.snapshot("ns")
    assert [m.name for m in snap.models] == ["a", "b"]
    assert [g.name for g in snap.gateways] == ["gw"] and snap.policies == () and snap.budgets == ()
    assert [m.namespace for m in store.objects("AIModel", "elsewhere")] == ["elsewhere"]


def test_a_written_status_stands_in_until_the_watch_delivers_it() -> None:
    ready = {"conditions": [condition("Ready", True, "Accepted", "in gw", 1)]}
    indexed = [parse_model(_at(model("m"), 10))]
    store = ObjectStore(
        {index_id: {"ns": indexed} if kind == "AIModel" else {} for kind, (_, index_id) in INDEXED.items()}
    )
    store.wrote(indexed[0], _at(model("m"), 12, ready))
    assert store.objects("AIModel", "ns")[0].status == ready and store.pending() == 1
    store.wrote(indexed[0], _at(model("m"), 11, {}))  # an older answer arriving late changes nothing
    assert store.objects("AIModel", "ns")[0].status == ready
    indexed[0] = parse_model(_at(model("m"), 12, ready))  # the watch caught up
    assert store.objects("AIModel", "ns")[0].resource_version == 12
    assert store.pending() == 0
    store.wrote(indexed[0], None)  # the object was gone: nothing recorded
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


def test_only_a_first_not_selected_status_is_held() -> None:
    waiting = {"conditions": [condition("Ready", False, "NotSelected", "no AIGateway", 1)]}
    accepted = {"conditions": [condition("Ready", True, "Accepted", "in gw", 1)]}
    new = parse_model(model("m"))
    assert first_unselected((new, waiting, []))
    assert not first_unselected((new, accepted, []))
    seen_before = parse_model(_at(model("m"), 3, accepted))
    assert not first_unselected((seen_before, waiting, []))  # leaving a gateway is news: written now
