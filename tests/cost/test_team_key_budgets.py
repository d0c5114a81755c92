"""Team-scoped and per-key budgets through the public API, with the official `openai` SDK as client.

Teams come from config keys (`auth.api_keys[].team`) and keys created over `/admin/keys`
(`team`); per-key budgets from `budget_usd` on either. Both are enforced with the same
reserve-then-settle machinery as any CostBudget: in-process, and on a real redis-server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.backing import RedisServer
from tests.cost.stores import wait_for_rows
from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, RunningGateway, base_config
from tests.security.test_jwt import AUD, ISS, Idp
from tests.servers import run_asgi_app

PRICED = {"input_per_1k": "0", "output_per_1k": "1"}  # max_tokens=5 costs exactly $0.005
MODELS = [{"name": "big", "provider": "mock", "pricing": PRICED}]
KEY_A1, KEY_B1, KEY_CAPPED = "sk-team-a-one", "sk-team-b-one", "sk-capped"


@pytest.fixture(autouse=True)
def _team_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMM_TEST_KEY_A1", KEY_A1)
    monkeypatch.setenv("AIMM_TEST_KEY_B1", KEY_B1)
    monkeypatch.setenv("AIMM_TEST_KEY_CAPPED", KEY_CAPPED)


def _config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    config = base_config(MODELS, store={"sqlite_path": str(tmp_path / "usage.db"), "flush_interval_s": 0.05}, **extra)
    config["auth"]["api_keys"] += [
        {"name": "a-one", "key": {"env": "AIMM_TEST_KEY_A1"}, "role": "user", "team": "team-a"},
        {"name": "b-one", "key": {"env": "AIMM_TEST_KEY_B1"}, "role": "user", "team": "team-b"},
        {"name": "capped", "key": {"env": "AIMM_TEST_KEY_CAPPED"}, "role": "user", "budget_usd": "0.01"},
    ]
    return config


def _create_key(gw: RunningGateway, **fields: Any) -> dict[str, Any]:
    resp = httpx.post(f"{gw.url}/admin/keys", json=fields, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def _ask(key: str, gw: RunningGateway) -> Any:
    client = openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="big", max_tokens=5, messages=[{"role": "user", "content": "please answer at some length"}]
    )


def _refusal(key: str, gw: RunningGateway) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(key, gw)
    err = refused.value
    assert err.status_code == 429 and err.code == "insufficient_quota"
    assert isinstance(err.body, dict) and err.body["type"] == "insufficient_quota"
    return err


def test_two_team_a_keys_exhaust_team_a_budget_team_b_still_served(
    start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path
) -> None:
    budget = {"name": "team-a-cap", "limit_usd": "0.01", "period": "monthly", "action": "block", "teams": ["team-a"]}
    gw = start_gateway(_config(tmp_path, budgets=[budget]))
    created = _create_key(gw, name="a-two", role="user", team="team-a")
    assert created["team"] == "team-a"
    listed = httpx.get(f"{gw.url}/admin/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["data"]
    assert {k["name"]: k["team"] for k in listed} == {"a-two": "team-a"}

    assert _ask(KEY_A1, gw).http_response.status_code == 200
    assert _ask(created["key"], gw).http_response.status_code == 200  # the second team-a key: $0.01 spent
    for key in (KEY_A1, created["key"]):
        err = _refusal(key, gw)
        assert "budget 'team-a-cap' is exhausted" in err.message and "resets at" in err.message
        assert err.response.headers["x-aimm-budget"] == "team-a-cap"
    assert _ask(KEY_B1, gw).http_response.status_code == 200  # team b: out of the budget's scope
    assert _ask(API_KEY, gw).http_response.status_code == 200  # a key without a team too

    rows = wait_for_rows(tmp_path / "usage.db", "key_name, team, status", 6)
    teams = [(r["key_name"], r["team"], r["status"]) for r in rows]
    assert teams == [
        ("a-one", "team-a", 200), ("a-two", "team-a", 200), ("a-one", "team-a", 429), ("a-two", "team-a", 429),
        ("b-one", "team-b", 200), ("tests", None, 200),
    ]  # fmt: skip
    with gw.client() as client:
        groups = client.get("/api/v1/analytics/usage", params={"group_by": "team"}).json()["groups"]
        status = client.get("/api/v1/budgets").json()["budgets"][0]
    by_team = {g["team"]: g for g in groups}
    assert by_team["team-a"]["requests"] == 4 and by_team["team-a"]["cost_usd"] == "0.010000"
    assert by_team["team-b"]["requests"] == 1 and by_team["team-b"]["cost_usd"] == "0.005000"
    assert status["costThisPeriod"] == "0.0100" and status["source"] == "store"  # team-a rows only


def test_developer_keys_carry_their_own_team(
    start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIMM_TEST_KEY_DEV", "sk-dev")
    config = _config(tmp_path)
    config["auth"]["api_keys"].append(
        {"name": "dev", "key": {"env": "AIMM_TEST_KEY_DEV"}, "role": "developer", "team": "team-a"}
    )
    gw = start_gateway(config)
    headers = {"authorization": "Bearer sk-dev"}
    own = httpx.post(f"{gw.url}/api/v1/keys", json={"name": "mine"}, headers=headers)
    assert own.status_code == 201 and own.json()["team"] == "team-a"
    other = httpx.post(f"{gw.url}/api/v1/keys", json={"name": "sneaky", "team": "team-b"}, headers=headers)
    assert other.status_code == 403 and other.json()["error"]["type"] == "permission_error"


def _key_budget_enforced(gw: RunningGateway) -> None:
    created = _create_key(gw, name="api-capped", role="user", budget_usd="0.01")
    assert created["budget_usd"] == "0.01"
    for key, name in ((KEY_CAPPED, "capped"), (created["key"], "api-capped")):
        assert [_ask(key, gw).http_response.status_code for _ in range(2)] == [200, 200]
        err = _refusal(key, gw)
        assert f"budget 'key:{name}' is exhausted" in err.message and "$0.0100 of $0.01" in err.message
    assert _ask(API_KEY, gw).http_response.status_code == 200  # other keys: unaffected
    bad = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "x", "budget_usd": "-1"},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_per_key_budget_in_process(start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path) -> None:
    _key_budget_enforced(start_gateway(_config(tmp_path)))


def test_per_key_budget_on_redis(
    start_gateway: Callable[[dict[str, Any]], RunningGateway],
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIMM_TEST_REDIS_URL", redis_server.url)
    prefix = f"aimm-keybudget-{time.time_ns()}:"
    state = {"redis": {"url": {"env": "AIMM_TEST_REDIS_URL"}, "timeout_ms": 2000, "key_prefix": prefix}}
    _key_budget_enforced(start_gateway(_config(tmp_path, state=state)))
    # The counters live in Redis: a second gateway process sharing it refuses the capped key too.
    (tmp_path / "second").mkdir()
    second = start_gateway(_config(tmp_path / "second", state=state))
    err = _refusal(KEY_CAPPED, second)
    assert "budget 'key:capped' is exhausted" in err.message


def test_key_budget_survives_a_restart_from_the_store(
    start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path
) -> None:
    first = start_gateway(_config(tmp_path))
    assert [_ask(KEY_CAPPED, first).http_response.status_code for _ in range(2)] == [200, 200]
    assert len(wait_for_rows(tmp_path / "usage.db", "key_name", 2)) == 2
    second = start_gateway(_config(tmp_path))  # in-process state: the counter is rebuilt from the store
    assert "budget 'key:capped' is exhausted" in _refusal(KEY_CAPPED, second).message


def test_jwt_team_claim_meets_team_budget(
    start_gateway: Callable[[dict[str, Any]], RunningGateway], tmp_path: Path
) -> None:
    provider = Idp()

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(provider.jwks())

    budget = {"name": "team-a-cap", "limit_usd": "0.01", "action": "block", "teams": ["team-a"]}
    jwt_settings = {
        "issuer": ISS, "audience": AUD, "role_claim": "groups", "role_map": {"eng": "user"}, "team_claim": "team",
    }  # fmt: skip
    with run_asgi_app(Starlette(routes=[Route("/jwks", jwks)])) as url:
        config = _config(tmp_path, budgets=[budget])
        config["auth"]["jwt"] = {**jwt_settings, "jwks_url": f"{url}/jwks"}
        gw = start_gateway(config)
        alice, bob = provider.token(sub="alice", team="team-a"), provider.token(sub="bob", team="team-b")
        assert [_ask(alice, gw).http_response.status_code for _ in range(2)] == [200, 200]
        assert "budget 'team-a-cap' is exhausted" in _refusal(provider.token(sub="carol", team="team-a"), gw).message
        assert _ask(bob, gw).http_response.status_code == 200
