"""Budget actions through the public API, with the official `openai` SDK as the client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.gateway.conftest import API_KEY, RunningGateway, base_config

PRICED = {"input_per_1k": "0", "output_per_1k": "1"}  # max_tokens=5 costs exactly $0.005


def _models() -> list[dict[str, Any]]:
    return [
        {"name": "big", "provider": "mock", "pricing": PRICED},
        {"name": "cheap", "provider": "mock", "pricing": {"input_per_1k": "0", "output_per_1k": "0.01"}},
    ]


def _ask(client: openai.OpenAI, model: str = "big") -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, max_tokens=5, messages=[{"role": "user", "content": "please answer at some length"}]
    )


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=API_KEY, max_retries=0)


def test_block_is_openai_insufficient_quota(start_gateway: Callable[[dict[str, Any]], RunningGateway]) -> None:
    budget = {"name": "team-cap", "limit_usd": "0.01", "period": "monthly", "action": "block", "models": ["big"]}
    gw = start_gateway(base_config(_models(), budgets=[budget]))
    client = _client(gw)
    assert _ask(client).http_response.status_code == 200
    assert _ask(client).http_response.status_code == 200
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(client)
    err = refused.value
    assert err.status_code == 429 and err.code == "insufficient_quota"
    assert isinstance(err.body, dict) and err.body["type"] == "insufficient_quota"
    assert "budget 'team-cap' is exhausted" in err.message and "resets at" in err.message
    assert int(err.response.headers["retry-after"]) > 0
    assert _ask(client, "cheap").http_response.status_code == 200  # out of the budget's scope: served
    status = httpx.get(f"{gw.url}/api/v1/budgets", headers={"authorization": f"Bearer {API_KEY}"}).json()["budgets"][0]
    assert status["lastAction"]["action"] == "block" and status["state"] == "Exceeded"


def test_downgrade_routes_to_the_cheaper_model(start_gateway: Callable[[dict[str, Any]], RunningGateway]) -> None:
    budget = {
        "name": "team-cap", "limit_usd": "0.01", "period": "daily", "action": "downgrade",
        "downgrade_to": "cheap", "models": ["big"],
    }  # fmt: skip
    gw = start_gateway(base_config(_models(), budgets=[budget]))
    client = _client(gw)
    first = _ask(client)
    assert first.headers["x-aimm-model"] == "big"
    _ask(client)
    downgraded = _ask(client)
    assert downgraded.http_response.status_code == 200
    assert downgraded.headers["x-aimm-model"] == "cheap"
    assert "budget downgrade to cheap" in downgraded.headers["x-aimm-route-reason"]
    assert downgraded.parse().choices[0].message.content


def test_budget_thresholds_reach_the_status_feed(start_gateway: Callable[[dict[str, Any]], RunningGateway]) -> None:
    budget = {"name": "watch", "limit_usd": "0.01", "period": "weekly", "action": "alert", "thresholds": [50, 100]}
    gw = start_gateway(base_config(_models(), budgets=[budget]))
    client = _client(gw)
    for _ in range(3):  # alert only: the third request overspends and is still served
        assert _ask(client).http_response.status_code == 200
    feed = httpx.get(f"{gw.url}/api/v1/budgets", headers={"authorization": f"Bearer {API_KEY}"}).json()
    assert sorted(e["threshold"] for e in feed["thresholdEvents"]) == [50, 100]
    assert feed["budgets"][0]["costThisPeriod"] == "0.0150" and feed["budgets"][0]["source"] == "state"
    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'ai_multimodel_budget_threshold_crossed_total{budget="watch",threshold="100"} 1.0' in metrics


def test_router_keeps_only_targets_the_remaining_budget_covers(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
) -> None:
    budget = {"name": "route-cap", "limit_usd": "0.0075", "period": "daily", "action": "block"}
    route = {"name": "smart", "algorithm": "round_robin", "targets": [{"model": "big"}, {"model": "cheap"}]}
    gw = start_gateway(base_config(_models(), routes=[route], budgets=[budget]))
    client = _client(gw)
    served = [_ask(client, "smart").headers["x-aimm-model"] for _ in range(4)]
    # $0.005 on big fits once; after that only cheap ($0.00005) fits what is left: the router is told so
    # (max cost) instead of the request being refused.
    assert served.count("big") == 1 and served.count("cheap") == 3
