"""The `x-aimm-*` headers of an answer: a route reason goes out as one ASCII line of at most 200
characters, whatever the router wrote; stage headers come before the request id."""

from __future__ import annotations

from aimm_gateway.api.common import served_headers
from aimm_gateway.stages.base import AttemptRecord, Outcome
from tests.unit.stage_fixtures import context, mock_model, runtime


def _headers(reason: str) -> dict[str, str]:
    ctx = context(runtime([mock_model("a")]), "a")
    ctx.response_headers["x-ratelimit-remaining-requests"] = "9"
    attempts = [AttemptRecord("a", "mock", "ok", 200, 0.1)]
    return served_headers(ctx, Outcome(ok=True, model="a", provider="mock", route_reason=reason, attempts=attempts))


def test_a_plain_reason_as_it_is() -> None:
    assert _headers("requested model") == {
        "x-aimm-model": "a",
        "x-aimm-provider": "mock",
        "x-aimm-attempts": "1",
        "x-aimm-route-reason": "requested model",
        "x-ratelimit-remaining-requests": "9",
        "x-request-id": "rid-1",
    }


def test_line_breaks_and_non_ascii_are_replaced_and_long_reasons_cut() -> None:
    assert (
        _headers("fallback\r\nto b after \u2018timeout\u2019")["x-aimm-route-reason"]
        == "fallback  to b after ?timeout?"
    )
    assert _headers("x" * 300)["x-aimm-route-reason"] == "x" * 200
    assert _headers("é" * 300)["x-aimm-route-reason"] == "?" * 200
