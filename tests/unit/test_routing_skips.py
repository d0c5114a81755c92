"""Skip reasons as data: kinds, rendered sentences, and the 400-vs-503 choice made from them."""

from __future__ import annotations

from aimm_gateway.attempts.planning import no_target
from aimm_gateway.routing import Plan, Skip, SkipKind
from aimm_gateway.routing.datatypes import CIRCUIT_OPEN, DISABLED, OVER_COST, PROBES_BUSY, UNKNOWN_MODEL
from tests.unit.test_routing_support import BREAKER, features, model, models_of, new_state, route

WINDOW = Skip(SkipKind.CONTEXT_WINDOW, "2000")
LACKS = Skip(SkipKind.MISSING_CAPABILITY, "tools,vision")


def test_each_kind_renders_its_sentence() -> None:
    assert str(WINDOW) == "context window 2000 too small"
    assert str(LACKS) == "lacks tools,vision"
    assert str(OVER_COST) == "estimated cost over max_cost"
    assert str(CIRCUIT_OPEN) == "circuit open"
    assert str(PROBES_BUSY) == "circuit half-open, probes busy"
    assert str(DISABLED) == "disabled"
    assert str(UNKNOWN_MODEL) == "unknown model"
    assert f"{WINDOW}" == str(WINDOW)  # f-strings (route reasons) render the same


def test_only_request_shaped_skips_are_misfits() -> None:
    assert [k for k in SkipKind if Skip(k).request_misfit] == [
        SkipKind.CONTEXT_WINDOW,
        SkipKind.MISSING_CAPABILITY,
        SkipKind.OVER_COST,
    ]


def test_planner_reports_kinds_not_text() -> None:
    ms = models_of(model("small", context_window=1000), model("plain", capabilities=["chat"]))
    state, _ = new_state()
    plan = state.plan(route(["small", "plain", "ghost"]), ms, features(prompt=5000, caps=("tools",)), BREAKER)
    assert {name: skip.kind for name, skip in plan.skipped.items()} == {
        "small": SkipKind.CONTEXT_WINDOW,
        "plain": SkipKind.MISSING_CAPABILITY,
        "ghost": SkipKind.UNKNOWN_MODEL,
    }


def test_no_target_is_400_when_the_request_fits_nothing() -> None:
    err = no_target("smart", Plan((), "none", None, {"a": WINDOW, "b": LACKS, "c": OVER_COST}))
    assert err.status == 400 and err.code == "no_suitable_model"
    assert "a: context window 2000 too small; b: lacks tools,vision; c: estimated cost over max_cost" in err.message


def test_no_target_is_503_when_something_is_down_or_disabled() -> None:
    down = no_target("smart", Plan((), "none", 2.5, {"a": WINDOW, "b": CIRCUIT_OPEN}))
    assert down.status == 503 and down.headers["retry-after"] == "3"
    assert no_target("smart", Plan((), "none", None, {"a": WINDOW, "b": DISABLED})).status == 503
    assert no_target("smart", Plan((), "none", None, {})).status == 503
