"""Micro-benchmark of routing decisions: microseconds per decision, per algorithm.

`bench_plan()` is what `make bench` reports; `python -m aimm_gateway.routing.bench` prints it
and `bench_request()` (a whole request's routing work: plan + acquire + on_start + on_success).
Targets are warmed with outcomes and carry uneven in-flight counts, so every algorithm works on
live statistics (no all-idle shortcuts), and the clock moves between decisions so time-based
caches behave as in production. Each figure is the
best of `repeat` short runs of CPU time (not wall time): on a shared machine the minimum is the
cost and the rest is other processes' noise.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal

from aimm_gateway.config import (
    ALGORITHMS,
    CircuitBreakerSettings,
    ModelConfig,
    Pricing,
    RouteConfig,
    RouteTarget,
)
from aimm_gateway.routing.clock import FakeClock
from aimm_gateway.routing.datatypes import RequestFeatures
from aimm_gateway.routing.state import RouterState

_FEATURES = RequestFeatures(prompt_tokens=1200, max_output_tokens=512)
_BREAKER = CircuitBreakerSettings()


def _setup(
    n_targets: int, algorithm: str, seed: int
) -> tuple[RouterState, FakeClock, RouteConfig, dict[str, ModelConfig]]:
    rng = random.Random(seed)
    models = {
        f"model-{i}": ModelConfig(
            name=f"model-{i}",
            provider="mock",
            pricing=Pricing(
                input_per_1k=Decimal(rng.randint(1, 300)) / 10000,
                output_per_1k=Decimal(rng.randint(1, 900)) / 10000,
            ),
            context_window=rng.choice([32_000, 128_000, 200_000]),
            quality=rng.random(),
        )
        for i in range(n_targets)
    }
    route = RouteConfig(
        name="bench",
        algorithm=algorithm,
        targets=[RouteTarget(model=name, weight=rng.randint(1, 10)) for name in models],
        fallbacks=[next(iter(models))],
    )
    clock = FakeClock()
    state = RouterState(clock, random.Random(seed))
    for _ in range(5):  # warm statistics so no target is "untried"
        for name in models:
            state.on_start(name)
            state.on_success(name, rng.uniform(0.2, 2.0), Decimal("0.001"))
            clock.advance(0.001)
    for name in models:  # requests in flight, unevenly, as under real concurrency
        for _ in range(rng.randint(0, 3)):
            state.on_start(name)
    return state, clock, route, models


def bench_plan(n_targets: int = 50, iterations: int = 10_000, repeat: int = 5, seed: int = 7) -> dict[str, float]:
    """{algorithm: microseconds per `plan()`} over `n_targets` targets."""
    out: dict[str, float] = {}
    for algorithm in ALGORITHMS:
        state, clock, route, models = _setup(n_targets, algorithm, seed)
        plan = state.plan
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            for _ in range(iterations):
                plan(route, models, _FEATURES, _BREAKER)
                clock.now += 0.0001
            best = min(best, time.process_time() - t0)
        out[algorithm] = round(best / iterations * 1e6, 2)
    return out


def bench_request(n_targets: int = 50, iterations: int = 10_000, repeat: int = 5, seed: int = 7) -> dict[str, float]:
    """{algorithm: microseconds of routing work per request}: plan, acquire, on_start and
    on_success (so statistics and posteriors change between every two decisions)."""
    out: dict[str, float] = {}
    cost = Decimal("0.001")
    for algorithm in ALGORITHMS:
        state, clock, route, models = _setup(n_targets, algorithm, seed)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            for i in range(iterations):
                first = state.plan(route, models, _FEATURES, _BREAKER).attempts[0]
                state.acquire(first)
                state.on_start(first)
                state.on_success(first, 0.3 + (i % 7) * 0.1, cost)
                clock.now += 0.0001
            best = min(best, time.process_time() - t0)
        out[algorithm] = round(best / iterations * 1e6, 2)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps({"plan_us": bench_plan(), "request_us": bench_request()}, indent=2))
