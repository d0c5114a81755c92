"""Probe finding 1: an empty or truncated config file must not replace a working one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from aimm_gateway.config import parse_config
from aimm_gateway.security.reload_guard import reload_refusal
from tests.gateway.conftest import RunningGateway, Upstream, base_config, upstream_model

Start = Callable[[dict[str, Any]], RunningGateway]


def _three_routes(upstream: Upstream) -> dict[str, Any]:
    models = [upstream_model(n, upstream) for n in ("a", "b", "c")]
    routes = [{"name": f"r-{n}", "targets": [{"model": n}]} for n in ("a", "b", "c")]
    return base_config(models, routes=routes)


def _chat(gw: RunningGateway, model: str) -> int:
    with gw.client() as c:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return c.post("/v1/chat/completions", json=body).status_code


def test_empty_file_is_refused_and_keys_keep_working(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(_three_routes(openai_upstream))
    before = gw.gateway.runtime.config_hash
    gw.config_path.write_text("")
    assert gw.gateway.reload_now() is False
    assert gw.gateway.runtime.config_hash == before
    assert _chat(gw, "r-a") == 200  # the API key and the route still work


def test_truncated_routes_are_refused(openai_upstream: Upstream, start_gateway: Start) -> None:
    gw = start_gateway(_three_routes(openai_upstream))
    text = yaml.safe_dump(_three_routes(openai_upstream), sort_keys=False)
    cut = text.index("- name: r-b")  # the writer stopped after the first route
    gw.config_path.write_text(text[:cut])
    assert gw.gateway.reload_now() is False
    assert _chat(gw, "r-c") == 200
    # Saying so explicitly in the new file makes the same shrink acceptable.
    gw.config_path.write_text(text[:cut] + "hardening:\n  reload:\n    allow_shrink: true\n")
    assert gw.gateway.reload_now() is True
    assert "r-c" not in gw.gateway.runtime.routes


def test_refusal_reasons() -> None:
    old = parse_config(
        {
            "auth": {"api_keys": [{"name": "k", "key": {"env": "X"}}]},
            "admin": {"token": {"env": "Y"}},
            "models": [{"name": f"m{i}", "provider": "mock"} for i in range(8)],
        }
    )
    same_models = [{"name": f"m{i}", "provider": "mock"} for i in range(8)]
    keys = {"api_keys": [{"name": "k", "key": {"env": "X"}}]}
    admin = {"token": {"env": "Y"}}
    cases = {
        "no models": parse_config(None),
        "authentication off": parse_config({"auth": {"enabled": False}, "admin": admin, "models": same_models}),
        "every API key": parse_config({"admin": admin, "models": same_models}),
        "admin API off": parse_config({"auth": keys, "models": same_models}),
        "drops 3 of 8 models": parse_config({"auth": keys, "admin": admin, "models": same_models[:5]}),
    }
    for expected, new in cases.items():
        reason = reload_refusal(old, new)
        assert reason is not None and expected in reason, (expected, reason)
    assert reload_refusal(old, parse_config({"auth": keys, "admin": admin, "models": same_models[:6]})) is None
