"""The A/B's interleaving: each round runs every contender once, in an order that turns, and the
ratios are taken within a round (pure apart from reading this process's CPU time)."""

from __future__ import annotations

import os

import pytest

from aimm_gateway.bench import cpu
from aimm_gateway.bench.loadgen import WrkResult


def test_the_order_turns_by_one_each_round_and_every_round_is_kept() -> None:
    order: list[str] = []

    def load(name: str) -> WrkResult:
        order.append(name)
        return WrkResult(rps=100.0, p50_ms=1.0, p99_ms=2.0, errors=0, requests=100)

    loads = {name: (os.getpid(), lambda name=name: load(name)) for name in ("a", "b", "c")}
    result = cpu.interleaved(loads, rounds=4)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert all(len(r.by_round) == 4 for r in result.values())
    assert all(r.us == sorted(r.by_round)[2] for r in result.values())  # the median round


def test_ratios_are_taken_within_each_round() -> None:
    # A slow stretch (round 2) lifts both: within the round the ratio is unchanged, while the ratio
    # of the two medians would compare rounds of different speed.
    this = cpu.CpuPerRequest(0, 0, 0, by_round=[50.0, 52.0, 80.0])
    base = cpu.CpuPerRequest(0, 0, 0, by_round=[100.0, 104.0, 160.0])
    assert cpu.paired_ratios(this, base) == (0.5, 0.5, 0.5)
    this.by_round = [48.0, 55.0, 50.0]
    assert cpu.paired_ratios(this, base) == pytest.approx((0.48, 0.3125, 0.5288), abs=1e-4)
