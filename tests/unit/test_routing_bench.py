"""The routing micro-benchmark runs, and stays in the budget's neighbourhood."""

from __future__ import annotations

from aimm_gateway.config import ALGORITHMS
from aimm_gateway.routing.bench import bench_plan, bench_request


def test_bench_reports_every_algorithm() -> None:
    result = bench_plan(n_targets=10, iterations=200, repeat=1)
    assert set(result) == set(ALGORITHMS)
    assert all(isinstance(us, float) and us > 0 for us in result.values())
    assert set(bench_request(n_targets=10, iterations=100, repeat=1)) == set(ALGORITHMS)


def test_a_decision_over_50_targets_is_cheap() -> None:
    # The budget is 20 us on the reference machine; 5x slack keeps this meaningful but not flaky
    # on a loaded CI runner (it still catches an accidental O(n^2) or a per-target allocation storm).
    result = bench_plan(n_targets=50, iterations=2000, repeat=3)
    assert max(result.values()) < 100, result
