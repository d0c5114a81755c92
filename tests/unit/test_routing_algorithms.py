"""The six algorithms, each through RouterState.plan with a fake clock and seeded random."""

from __future__ import annotations

import random
from collections import Counter

from aimm_gateway.config import (
    CircuitBreakerSettings,
    IntelligentFactors,
    ModelConfig,
    Pricing,
    RouteConfig,
    RouteTarget,
)
from aimm_gateway.routing import FakeClock, RouterState
from tests.unit.test_routing_support import (
    BREAKER,
    features,
    first_pick,
    model,
    models_of,
    new_state,
    route,
    serve,
)

# Adaptive tests are about learning, not breakers: keep breakers out of the way.
LENIENT = CircuitBreakerSettings(failure_threshold=10_000, failure_rate=1.0, min_requests=10_000)


def test_weighted_split_holds_within_two_points_over_10000_picks() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    r = route(
        [
            RouteTarget(model="a", weight=0.4),
            RouteTarget(model="b", weight=0.3),
            RouteTarget(model="c", weight=0.3),
        ],
        algorithm="weighted",
    )
    state, _ = new_state(seed=11)
    counts = Counter(first_pick(state, r, ms) for _ in range(10_000))
    assert abs(counts["a"] / 10_000 - 0.4) <= 0.02
    assert abs(counts["b"] / 10_000 - 0.3) <= 0.02
    assert abs(counts["c"] / 10_000 - 0.3) <= 0.02


def test_weighted_zero_weight_target_is_only_a_backup() -> None:
    ms = models_of(model("a"), model("b"))
    r = route([RouteTarget(model="a", weight=1), RouteTarget(model="b", weight=0)], algorithm="weighted")
    state, _ = new_state()
    plans = [state.plan(r, ms, features(), BREAKER) for _ in range(200)]
    assert {p.attempts for p in plans} == {("a", "b")}


def test_round_robin_cycles_through_every_target() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    r = route(["a", "b", "c"], algorithm="round_robin")
    state, _ = new_state()
    picks = [first_pick(state, r, ms) for _ in range(9)]
    for i in range(7):
        assert set(picks[i : i + 3]) == {"a", "b", "c"}
    assert picks[:3] == picks[3:6] == picks[6:9]
    plan = state.plan(r, ms, features(), BREAKER)
    assert sorted(plan.attempts) == ["a", "b", "c"]  # the rest follow the rotation
    assert plan.reason.startswith("round_robin: ")


def test_least_connections_picks_the_idle_target() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    r = route(["a", "b", "c"], algorithm="least_connections")
    state, _ = new_state()
    for name, n in (("a", 2), ("b", 0), ("c", 1)):
        for _ in range(n):
            state.on_start(name)
    plan = state.plan(r, ms, features(), BREAKER)
    assert plan.attempts == ("b", "c", "a")  # then by in-flight count
    assert "0 in flight" in plan.reason
    state.on_cancel("a")
    state.on_cancel("a")
    state.on_cancel("c")
    # All idle now: ties rotate instead of piling onto the first.
    assert {first_pick(state, r, ms) for _ in range(3)} == {"a", "b", "c"}


def test_response_time_explores_untried_targets_first() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    r = route(["a", "b", "c"], algorithm="response_time")
    state, clock = new_state()
    seen = []
    for _ in range(3):
        pick = first_pick(state, r, ms)
        seen.append(pick)
        serve(state, clock, pick, 0.5)
    assert sorted(seen) == ["a", "b", "c"]


def test_response_time_moves_off_a_target_that_slowed_down() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    r = route(["a", "b", "c"], algorithm="response_time")
    state, clock = new_state()
    latency = {"a": 0.1, "b": 0.2, "c": 0.3}
    for name, lat in latency.items():
        for _ in range(3):
            serve(state, clock, name, lat)
    for _ in range(20):
        pick = first_pick(state, r, ms)
        assert pick == "a"
        serve(state, clock, pick, latency[pick])
    latency["a"] = 1.0  # a degrades
    moved_after = None
    for i in range(1, 11):
        pick = first_pick(state, r, ms)
        if pick != "a":
            moved_after = i
            break
        serve(state, clock, pick, latency[pick])
    assert moved_after is not None and moved_after <= 3
    assert first_pick(state, r, ms) == "b"


def test_response_time_reprobes_a_stale_slow_target_once() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], algorithm="response_time")
    state, clock = new_state()
    serve(state, clock, "a", 0.1)
    serve(state, clock, "b", 2.0)
    picks = []
    for _ in range(400):  # 40 s of traffic on a: b's measurement goes stale (30 s)
        pick = first_pick(state, r, ms)
        picks.append(pick)
        serve(state, clock, pick, 0.1 if pick == "a" else 2.0)
    assert 1 <= picks.count("b") <= 2  # re-probed, found still slow, left alone again


def test_response_time_on_a_quiet_route_trusts_old_measurements() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["b", "a"], algorithm="response_time")
    state, clock = new_state()
    serve(state, clock, "a", 0.1)
    serve(state, clock, "b", 0.5)
    for _ in range(5):  # one request every 5 minutes: everything is "old", nothing is stale
        clock.advance(300)
        pick = first_pick(state, r, ms)
        assert pick == "a"
        serve(state, clock, pick, 0.1)


def test_response_time_spreads_concurrent_load() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], algorithm="response_time")
    state, clock = new_state()
    serve(state, clock, "a", 0.1)
    serve(state, clock, "b", 0.15)
    # 6 requests in flight at once: a's key grows with its queue, so b takes some.
    picks = []
    for _ in range(6):
        pick = first_pick(state, r, ms)
        state.on_start(pick)
        picks.append(pick)
    assert 0 < picks.count("b") < 6


def _intelligent_models() -> dict[str, ModelConfig]:
    return models_of(
        model(
            "cheap",
            pricing=Pricing(input_per_1k="0.0001", output_per_1k="0.0002"),
            quality=0.3,
            context_window=8000,
        ),
        model(
            "fast",
            pricing=Pricing(input_per_1k="0.001", output_per_1k="0.002"),
            quality=0.6,
            context_window=8000,
            capabilities=frozenset({"chat", "tools", "json", "vision"}),
        ),
        model(
            "premium",
            pricing=Pricing(input_per_1k="0.01", output_per_1k="0.03"),
            quality=0.95,
            context_window=200_000,
        ),
    )


def _performance_only() -> RouteConfig:
    """An intelligent route over the three models that weighs latency alone."""
    return route(
        ["cheap", "fast", "premium"],
        algorithm="intelligent",
        factors=IntelligentFactors(cost=0, performance=1, quality=0),
    )


def _warm(state: RouterState, clock: FakeClock) -> None:
    for name, lat in (("cheap", 2.0), ("fast", 0.2), ("premium", 1.0)):
        for _ in range(3):
            serve(state, clock, name, lat)


def test_intelligent_factors_change_the_pick() -> None:
    ms = _intelligent_models()
    picks = {}
    # Each expected winner is listed last, so only its score can put it first.
    for label, factors, order in (
        ("cost", IntelligentFactors(cost=1, performance=0, quality=0), ["premium", "fast", "cheap"]),
        ("performance", IntelligentFactors(cost=0, performance=1, quality=0), ["cheap", "premium", "fast"]),
        ("quality", IntelligentFactors(cost=0, performance=0, quality=1), ["cheap", "fast", "premium"]),
    ):
        state, clock = new_state()
        _warm(state, clock)
        r = route(list(order), algorithm="intelligent", factors=factors)
        plan = state.plan(r, ms, features(prompt=1000, max_out=500), BREAKER)
        picks[label] = plan.attempts
    assert picks["cost"] == ("cheap", "fast", "premium")
    assert picks["performance"] == ("fast", "premium", "cheap")
    assert picks["quality"] == ("premium", "fast", "cheap")


def test_intelligent_honors_every_constraint_and_explains() -> None:
    ms = _intelligent_models()
    r = route(["cheap", "fast", "premium"], algorithm="intelligent", factors=IntelligentFactors(cost=0, quality=1))
    state, clock = new_state()
    _warm(state, clock)

    plan = state.plan(r, ms, features(prompt=1000, max_out=1000, max_cost="0.005"), BREAKER)
    assert plan.attempts == ("fast", "cheap")  # premium would cost ~$0.04
    assert plan.skip_reasons() == {"premium": "estimated cost over max_cost"}
    # the estimate uses the expected output when the request sets no cap: 1000 x 0.01 + 256 x 0.03
    assert state.plan(r, ms, features(prompt=1000, max_cost="0.0177"), BREAKER).attempts[0] == "premium"
    assert state.plan(r, ms, features(prompt=1000, max_cost="0.0176"), BREAKER).attempts[0] == "fast"

    plan = state.plan(r, ms, features(prompt=10_000), BREAKER)
    assert plan.attempts == ("premium",)
    assert plan.skip_reasons() == {"cheap": "context window 8000 too small", "fast": "context window 8000 too small"}

    plan = state.plan(r, ms, features(prompt=7000, max_out=1500), BREAKER)
    assert plan.attempts == ("premium",)  # the requested output must fit too

    plan = state.plan(r, ms, features(caps=("vision", "tools")), BREAKER)
    assert plan.attempts == ("fast",)
    assert plan.skip_reasons() == {"cheap": "lacks vision", "premium": "lacks vision"}

    plan = state.plan(r, ms, features(), BREAKER)
    assert plan.attempts[0] == "premium"
    reason = plan.reason
    assert reason.startswith("intelligent: premium score ")
    assert "quality 0.95" in reason
    assert reason.isascii() and "\r" not in reason and "\n" not in reason and len(reason) < 200


def test_intelligent_tries_an_unmeasured_target() -> None:
    ms, r = _intelligent_models(), _performance_only()
    state, clock = new_state()
    for _ in range(3):
        serve(state, clock, "fast", 0.2)
        serve(state, clock, "premium", 1.0)
    assert first_pick(state, r, ms) == "cheap"  # unmeasured: tried once


def test_intelligent_reprobes_a_stale_target() -> None:
    ms, r = _intelligent_models(), _performance_only()
    state, clock = new_state()
    _warm(state, clock)
    picks = []
    for _ in range(400):  # 80 s of traffic that all goes to "fast"
        pick = first_pick(state, r, ms)
        picks.append(pick)
        serve(state, clock, pick, {"cheap": 2.0, "fast": 0.2, "premium": 1.0}[pick])
    assert picks.count("fast") >= 390
    assert 1 <= picks.count("premium") <= 3  # re-measured about every 30 s, not abandoned


def _simulate(
    state: RouterState,
    clock: FakeClock,
    r: RouteConfig,
    ms: dict[str, ModelConfig],
    p_ok: dict[str, float],
    n: int,
    sim: random.Random,
) -> list[str]:
    picks = []
    for _ in range(n):
        pick = first_pick(state, r, ms)
        picks.append(pick)
        serve(state, clock, pick, 0.05, ok=sim.random() < p_ok[pick])
    return picks


def test_adaptive_converges_on_the_best_and_reconverges_after_it_degrades() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    r = route(["a", "b", "c"], algorithm="adaptive", exploration=0.1, circuit_breaker=LENIENT)
    state, clock = new_state(seed=5)
    sim = random.Random(99)
    p_ok = {"a": 0.9, "b": 0.6, "c": 0.3}
    picks = _simulate(state, clock, r, ms, p_ok, 2000, sim)
    assert picks[-500:].count("a") / 500 >= 0.85
    p_ok["a"] = 0.1  # the best degrades
    picks = _simulate(state, clock, r, ms, p_ok, 1500, sim)
    assert picks[-500:].count("b") / 500 >= 0.8
    assert picks[-500:].count("a") / 500 <= 0.1


def test_adaptive_exploration_share_is_configurable() -> None:
    ms = models_of(model("a"), model("b"), model("c"))
    shares = {}
    for exploration in (0.0, 0.5):
        r = route(["a", "b", "c"], algorithm="adaptive", exploration=exploration)
        state, _ = new_state(seed=8)
        for _ in range(50):
            state.feedback("a", 1.0)
            state.feedback("b", 0.0)
            state.feedback("c", 0.0)
        picks = [first_pick(state, r, ms) for _ in range(3000)]
        shares[exploration] = 1 - picks.count("a") / len(picks)
    assert shares[0.0] < 0.02
    assert 0.28 <= shares[0.5] <= 0.39  # half explores, two thirds of that elsewhere


def test_adaptive_learns_from_client_feedback() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], algorithm="adaptive", exploration=0.1)
    state, clock = new_state(seed=3)
    for _ in range(20):
        serve(state, clock, "a", 0.5)
        serve(state, clock, "b", 0.5)
        state.feedback("a", 0.1)  # a answers, but users hate the answers
        state.feedback("b", 0.9)
    picks = [first_pick(state, r, ms) for _ in range(500)]
    assert picks.count("b") / 500 >= 0.85
    plan = state.plan(r, ms, features(), BREAKER)
    assert plan.reason.startswith("adaptive: ")


def test_adaptive_prefers_faster_and_cheaper_when_success_is_equal() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], algorithm="adaptive", exploration=0.1)
    state, clock = new_state(seed=4)
    for _ in range(40):
        serve(state, clock, "a", 0.3, cost="0.0001")
        serve(state, clock, "b", 20.0, cost="0.05")
    picks = [first_pick(state, r, ms) for _ in range(500)]
    assert picks.count("a") / 500 >= 0.8
