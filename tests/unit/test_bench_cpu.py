"""The A/B's interleaving: each round runs every contender once, in an order that turns, and the
ratios are taken within a round (pure apart from reading this process's CPU time)."""

from __future__ import annotations

import os

import pytest

from aimm_gateway.bench import cpu
from aimm_gateway.bench.loadgen import WrkResult, parse_wrk


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


def test_wrk_output_is_read_with_its_longest_request() -> None:
    out = """Running 1s test @ http://127.0.0.1:1/health
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   310.00us  120.00us  12.50ms   95.00%
    Req/Sec    12.00k     1.00k   13.00k    70.00%
  Latency Distribution
     50%  290.00us
     75%  330.00us
     90%  400.00us
     99%  800.00us
  12000 requests in 1.00s, 1.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  12000.00
Transfer/sec:      1.00MB
"""
    assert parse_wrk(out) == WrkResult(rps=12000.0, p50_ms=0.29, p99_ms=0.8, errors=3, requests=12000, max_ms=12.5)
