"""Honest readiness: an AIModel is Ready once the pods that report their config serve one holding
this generation of it (the operator remembers which models each config it compiled holds)."""

from __future__ import annotations

from aimm_operator.compile import compile_gateway
from aimm_operator.reconcile import Reconciled, placement
from aimm_operator.stats import PodStats, StatsCache, aggregate_pods
from aimm_operator.status import GatewayOutcome
from tests.unit.operator_fixtures import body, gw, snapshot


def reporting(*hashes: str) -> list[PodStats]:
    return [PodStats(config_hash=h) for h in hashes]


def reconciled(generation: int, cache: StatsCache | None) -> tuple[Reconciled, str]:
    m = body("AIModel", "m", {"provider": "mock", "model": "m", "weight": generation})
    m["metadata"]["generation"] = generation
    snap = snapshot(gateways=[gw("gw")], models=[m])
    c = compile_gateway(snap.gateways[0], snap)
    assert c.config_hash is not None
    if cache is not None:
        cache.configs.remember(snap.namespace, "gw", c.config_hash, {"m": generation})
    out = GatewayOutcome(c, None, None, "Disabled", "", config_applied=True)
    return Reconciled(snap, {"gw": out}, (), False, cache), c.config_hash


def test_no_pod_reports_then_the_applied_config_is_enough() -> None:
    r, _ = reconciled(1, None)
    assert placement(r, r.snapshot.models[0]).unloaded == []
    r, _ = reconciled(1, StatsCache(30))
    assert placement(r, r.snapshot.models[0]).unloaded == []  # nothing polled yet


def test_every_reporting_pod_must_serve_this_generation() -> None:
    cache = StatsCache(30)
    r1, h1 = reconciled(1, cache)
    r2, h2 = reconciled(2, cache)  # the model edited: a new config
    ns = r2.snapshot.namespace
    cache.put(ns, "gw", aggregate_pods(reporting(h1[:12], h2)))
    p = placement(r2, r2.snapshot.models[0])
    assert p.applied == ["gw"] and p.unloaded == ["1 of 2 pods of AIGateway gw"]
    # The pod on the older config still serves generation 1: that one is Ready there.
    assert placement(Reconciled(r1.snapshot, r1.outcomes, (), False, cache), r1.snapshot.models[0]).unloaded == [
        "1 of 2 pods of AIGateway gw"
    ]
    cache.put(ns, "gw", aggregate_pods(reporting(h2, h2)))
    r2b, _ = reconciled(2, cache)
    assert placement(r2b, r2b.snapshot.models[0]).unloaded == []
    cache.put(ns, "gw", aggregate_pods(reporting(h2, "unknown")))  # a config this process never compiled
    r2c, _ = reconciled(2, cache)
    assert placement(r2c, r2c.snapshot.models[0]).unloaded == ["1 of 2 pods of AIGateway gw"]
