"""Planning: skips with reasons, fallback chains, priorities, Retry-After, reloads."""

from __future__ import annotations

from decimal import Decimal

from aimm_gateway.config import CircuitBreakerSettings, RouteTarget
from aimm_gateway.routing import CLOSED, HALF_OPEN, OPEN, RouterState
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

QUICK = CircuitBreakerSettings(failure_threshold=1, timeout_s=30)


def trip(state: RouterState, name: str) -> None:
    state.on_failure(name, "http", 500, 0.1)


def test_plan_skips_disabled_open_and_too_small_models_with_reasons() -> None:
    ms = models_of(
        model("off", enabled=False),
        model("broken"),
        model("small", context_window=4000),
        model("big", context_window=100_000),
    )
    r = route(["off", "broken", "small", "big"], circuit_breaker=QUICK)
    state, _ = new_state()
    state.plan(r, ms, features(), BREAKER)
    trip(state, "broken")
    plan = state.plan(r, ms, features(prompt=5000), BREAKER)
    assert plan.attempts == ("big",)
    assert plan.skip_reasons() == {
        "off": "disabled",
        "broken": "circuit open",
        "small": "context window 4000 too small",
    }
    assert plan.retry_after_s is None
    assert plan.reason.endswith("; skipped 3")


def test_context_window_counts_the_requested_output() -> None:
    ms = models_of(model("small", context_window=4000), model("big", context_window=100_000))
    r = route(["small", "big"])
    state, _ = new_state()
    assert state.plan(r, ms, features(prompt=3000, max_out=999), BREAKER).attempts[0] in {"small", "big"}
    assert "small" in state.plan(r, ms, features(prompt=3000, max_out=999), BREAKER).attempts
    assert state.plan(r, ms, features(prompt=3000, max_out=1001), BREAKER).attempts == ("big",)
    assert state.plan(r, ms, features(prompt=4000), BREAKER).attempts == ("big",)  # no room for one token


def test_nothing_available_reports_the_soonest_retry() -> None:
    ms = models_of(model("a", circuit_breaker=CircuitBreakerSettings(failure_threshold=1, timeout_s=50)), model("b"))
    r = route(["a", "b"], circuit_breaker=QUICK)
    state, clock = new_state()
    state.plan(r, ms, features(), BREAKER)
    trip(state, "a")  # open until now + 50
    clock.advance(10)
    trip(state, "b")  # open until now + 30 = t0 + 40
    plan = state.plan(r, ms, features(), BREAKER)
    assert plan.attempts == ()
    assert plan.retry_after_s == 30.0
    assert plan.reason.startswith("none available for 101 tokens: a: circuit open; b: circuit open")
    clock.advance(30)  # b goes half-open: one probe
    plan = state.plan(r, ms, features(), BREAKER)
    assert plan.attempts == ("b",)
    assert state.breaker("b").state == HALF_OPEN
    assert state.acquire("b")
    plan = state.plan(r, ms, features(), BREAKER)  # the probe slot is taken
    assert plan.attempts == ()
    assert plan.skip_reasons()["b"] == "circuit half-open, probes busy"
    assert plan.retry_after_s == 10.0  # a reopens first
    state.on_start("b")
    state.on_success("b", 0.1, Decimal(0))
    assert state.breaker("b").state == CLOSED
    assert state.plan(r, ms, features(), BREAKER).attempts == ("b",)


def test_retry_after_ignores_open_models_that_would_not_fit_anyway() -> None:
    ms = models_of(model("small", context_window=4000), model("big", context_window=100_000))
    r = route(["small", "big"], circuit_breaker=QUICK)
    state, _clock = new_state()
    state.plan(r, ms, features(), BREAKER)
    trip(state, "small")
    plan = state.plan(r, ms, features(prompt=200_000), BREAKER)
    assert plan.attempts == ()
    assert plan.retry_after_s is None  # waiting would not help: nothing is big enough


def test_fallback_chain_order_and_dedup() -> None:
    ms = models_of(model("t1"), model("t2"), model("f1"), model("f2"), model("own"))
    r = route(
        [RouteTarget(model="t1", priority=0), RouteTarget(model="t2", priority=1)],
        fallbacks=["f1", "t1", "f2", "f1"],
        circuit_breaker=QUICK,
    )
    state, _ = new_state()
    plan = state.plan(r, ms, features(fallback="own"), BREAKER)
    assert plan.attempts == ("t1", "t2", "f1", "f2", "own")
    plan = state.plan(r, ms, features(fallback="t2"), BREAKER)
    assert plan.attempts == ("t1", "t2", "f1", "f2")
    trip(state, "t1")
    trip(state, "f1")
    plan = state.plan(r, ms, features(fallback="own"), BREAKER)
    assert plan.attempts == ("t2", "f2", "own")
    assert plan.skip_reasons() == {"t1": "circuit open", "f1": "circuit open"}


def test_fallbacks_take_over_when_no_target_is_available() -> None:
    ms = models_of(model("t", context_window=4000), model("f", context_window=100_000))
    r = route(["t"], fallbacks=["f"])
    state, _ = new_state()
    plan = state.plan(r, ms, features(prompt=9000), BREAKER)
    assert plan.attempts == ("f",)
    assert plan.reason.startswith("fallback: f (no route target available)")


def test_fallbacks_obey_constraints_too() -> None:
    ms = models_of(model("t"), model("f", context_window=2000), model("own", capabilities=frozenset({"chat"})))
    r = route(["t"], fallbacks=["f"])
    state, _ = new_state()
    plan = state.plan(r, ms, features(prompt=3000, caps=("tools",), fallback="own"), BREAKER)
    assert plan.attempts == ("t",)
    assert plan.skip_reasons() == {"f": "context window 2000 too small", "own": "lacks tools"}


def test_unknown_fallback_model_is_skipped() -> None:
    ms = models_of(model("t"))
    state, _ = new_state()
    plan = state.plan(route(["t"]), ms, features(fallback="nope"), BREAKER)
    assert plan.attempts == ("t",)
    assert plan.skip_reasons() == {"nope": "unknown model"}


def test_priority_tiers_pick_from_the_best_tier_first() -> None:
    ms = models_of(model("p1"), model("p2"), model("backup"))
    r = route(
        [RouteTarget(model="backup", priority=5), RouteTarget(model="p1"), RouteTarget(model="p2")],
        algorithm="round_robin",
        circuit_breaker=QUICK,
    )
    state, _ = new_state()
    firsts = {first_pick(state, r, ms) for _ in range(10)}
    assert firsts == {"p1", "p2"}
    assert state.plan(r, ms, features(), BREAKER).attempts[-1] == "backup"
    trip(state, "p1")
    trip(state, "p2")
    assert state.plan(r, ms, features(), BREAKER).attempts == ("backup",)


def test_model_priority_and_weight_apply_unless_the_route_sets_its_own() -> None:
    ms = models_of(model("a", priority=1), model("b", priority=0), model("c", priority=0, weight=0))
    r = route(["a", "b", RouteTarget(model="c", weight=1, priority=2)], algorithm="weighted")
    state, _ = new_state()
    assert {state.plan(r, ms, features(), BREAKER).attempts for _ in range(20)} == {("b", "a", "c")}


def test_plan_single_with_own_fallback() -> None:
    a = model("a", circuit_breaker=QUICK)
    ms = models_of(a, model("fb", context_window=200_000))
    state, _ = new_state()
    plan = state.plan_single(a, features(fallback="fb"), BREAKER, ms)
    assert plan.attempts == ("a", "fb")
    assert plan.reason == "direct: a"
    plan = state.plan_single(a, features(prompt=150_000, fallback="fb"), BREAKER, ms)
    assert plan.attempts == ("fb",)
    assert plan.reason == "direct: a unavailable, fallback fb"
    trip(state, "a")
    plan = state.plan_single(a, features(), BREAKER, ms)
    assert plan.attempts == ()
    assert plan.retry_after_s == 30.0
    assert plan.skip_reasons() == {"a": "circuit open"}


def test_plan_single_resolves_fallback_from_the_last_planned_models() -> None:
    a = model("a")
    ms = models_of(a, model("fb"))
    state, _ = new_state()
    state.plan(route(["a"]), ms, features(), BREAKER)
    assert state.plan_single(a, features(fallback="fb"), BREAKER).attempts == ("a", "fb")


def test_state_survives_reload_and_new_settings_apply() -> None:
    ms = models_of(model("a"), model("b"))
    r1 = route(["a", "b"], algorithm="round_robin", circuit_breaker=QUICK)
    state, clock = new_state()
    state.plan(r1, ms, features(), BREAKER)
    trip(state, "a")
    serve(state, clock, "b", 0.25)
    # Reload: new config objects, a different breaker timeout.
    ms2 = models_of(model("a"), model("b"))
    r2 = route(
        ["a", "b"],
        algorithm="round_robin",
        circuit_breaker=CircuitBreakerSettings(failure_threshold=1, timeout_s=5),
    )
    plan = state.plan(r2, ms2, features(), BREAKER)
    assert plan.attempts == ("b",)  # still open: a reload does not forget or shorten it
    snap = state.snapshot()
    assert snap["a"].circuit_state == OPEN
    assert snap["b"].latency_ewma_s == 0.25
    assert state.breaker("a").settings.timeout_s == 5


def test_reason_is_header_safe_even_for_odd_names() -> None:
    ms = models_of(model("mödel\r\nx"), model("plain"))
    r = route(["mödel\r\nx", "plain"], algorithm="round_robin")
    state, _ = new_state()
    for _ in range(2):
        plan = state.plan(r, ms, features(caps=("vis\nion",)), BREAKER)
        assert plan.reason.isascii()
        assert all(32 <= ord(ch) < 127 for ch in plan.reason)


def test_snapshot_reports_live_state() -> None:
    ms = models_of(model("a"))
    state, clock = new_state()
    state.plan(route(["a"], circuit_breaker=QUICK), ms, features(), BREAKER)
    state.on_start("a")
    state.on_start("a")
    serve(state, clock, "a", 0.5)
    snap = state.snapshot()["a"]
    assert snap.in_flight == 2
    assert snap.latency_ewma_s == 0.5
    assert snap.latency_p95_s is not None and 0.4 < snap.latency_p95_s <= 0.6
    assert snap.success_rate == 1.0
    assert snap.circuit_state == CLOSED and snap.retry_at is None
    state.on_failure("a", "timeout", None, 30.0)
    snap = state.snapshot()["a"]
    assert snap.in_flight == 1
    assert snap.circuit_state == OPEN
    assert snap.retry_at == clock.now + 30
    assert snap.failures == 1 and snap.successes == 1
    assert snap.latency_ewma_s is not None and snap.latency_ewma_s > 0.5  # a timeout looks slow


def test_circuits_are_the_snapshots_circuit_and_in_flight_without_its_quantiles() -> None:
    """What health views read (every scrape, every stats poll): closed, open, half-open as time
    passes, and the in-flight count, the same as `snapshot` gives."""
    ms = models_of(model("a"), model("b"))
    state, clock = new_state()
    state.plan(route(["a", "b"], circuit_breaker=QUICK), ms, features(), BREAKER)
    state.on_start("a")
    serve(state, clock, "b", 0.2)

    def both() -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]]:
        snap = {name: (t.circuit_state, t.in_flight) for name, t in state.snapshot().items()}
        return state.circuits(), snap

    circuits, snap = both()
    assert circuits == snap and circuits["a"] == (CLOSED, 1)
    trip(state, "b")
    circuits, snap = both()
    assert circuits == snap and circuits["b"] == (OPEN, 0)
    clock.now += 31
    circuits, snap = both()
    assert circuits == snap and circuits["b"] == (HALF_OPEN, 0)


def test_route_breaker_settings_survive_direct_use_of_the_model() -> None:
    a = model("a")
    ms = models_of(a, model("b"))
    r = route(["a", "b"], circuit_breaker=CircuitBreakerSettings(failure_threshold=2))
    state, _ = new_state()
    state.plan(r, ms, features(), BREAKER)
    state.plan_single(a, features(), BREAKER, ms)  # must not reset a's breaker to the default (5)
    trip(state, "a")
    trip(state, "a")
    assert state.breaker("a").state == OPEN
    # The model's own settings always win.
    b2 = model("b", circuit_breaker=CircuitBreakerSettings(failure_threshold=1))
    state.plan_single(b2, features(), BREAKER, ms)
    trip(state, "b")
    assert state.breaker("b").state == OPEN


def test_an_equivalent_models_mapping_does_not_recompile() -> None:
    ms = models_of(model("a"), model("b"))
    r = route(["a", "b"], algorithm="round_robin")
    state, _ = new_state()
    state.plan(r, ms, features(), BREAKER)
    compiled = state._routes["r"]
    state.plan(r, dict(ms), features(), BREAKER)  # e.g. a per-request "usable models" copy
    assert state._routes["r"] is compiled
    usable = {"a": ms["a"]}  # b became unusable
    assert state.plan(r, usable, features(), BREAKER).attempts == ("a",)
    assert state._routes["r"] is not compiled
    assert state.plan(r, ms, features(), BREAKER).attempts in {("a", "b"), ("b", "a")}


def test_a_route_without_breaker_settings_does_not_override_one_with() -> None:
    ms = models_of(model("a"))
    strict = route(["a"], name="strict", circuit_breaker=CircuitBreakerSettings(failure_threshold=1))
    plain = route(["a"], name="plain")
    state, _ = new_state()
    state.plan(strict, ms, features(), BREAKER)
    state.plan(plain, ms, features(), BREAKER)
    assert state.breaker("a").settings.failure_threshold == 1
    # The governing route drops its settings on reload: back to the gateway default.
    state.plan(route(["a"], name="strict"), ms, features(), BREAKER)
    assert state.breaker("a").settings is BREAKER
