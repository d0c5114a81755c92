"""`request_state` is the dict behind Starlette's `request.state`: what the access wrapper leaves
there (request id, identity, client address) is what any code reading `request.state` sees."""

from __future__ import annotations

from starlette.requests import Request

from aimm_gateway.api.common import caller, request_id, request_state
from aimm_gateway.security.identity import ANONYMOUS, Identity, Role


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": [(b"x-request-id", b"from-header")]})


def test_one_state_seen_both_ways() -> None:
    request = _request()
    assert (caller(request), request_id(request)) == (ANONYMOUS, "from-header")
    team = Identity("team-a", Role.USER)
    request_state(request).update(request_id="rid-7", identity=team)
    assert (request.state.request_id, request.state.identity) == ("rid-7", team)
    request.state.client_ip = "10.0.0.9"
    assert request_state(request)["client_ip"] == "10.0.0.9"
    assert (caller(request), request_id(request)) == (team, "rid-7")
