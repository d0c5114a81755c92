"""Config keys and the admin token are remembered by value per runtime snapshot (security/authn.py
`Authenticator.known`): a reload that removes, changes or demotes one takes effect on the very next
request, even for a credential that was just served; store keys are never remembered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aimm_gateway.errors import Unauthorized
from tests.gateway.conftest import ADMIN_TOKEN, API_KEY, RunningGateway, base_config

Start = Callable[[dict[str, Any]], RunningGateway]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
OTHER_KEY = "sk-other-0123456789abcdef"


def _client(gw: RunningGateway, token: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {token}"}, timeout=30)


def _reload(gw: RunningGateway, config: dict[str, Any]) -> None:
    gw.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert gw.gateway.reload_now() is True


def _config(**key: Any) -> dict[str, Any]:
    config = base_config([{"name": "m", "provider": "mock"}])
    config["auth"]["api_keys"].append({"name": "other", "key": {"env": "AIMM_OTHER_KEY"}, **key})
    return config


@pytest.fixture(autouse=True)
def _other_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMM_OTHER_KEY", OTHER_KEY)


def test_a_removed_config_key_is_refused_on_the_next_request(start_gateway: Start) -> None:
    gw = start_gateway(_config(role="user"))
    with _client(gw, OTHER_KEY) as other, _client(gw, API_KEY) as kept:
        for _ in range(3):  # served, so remembered
            assert other.post("/v1/chat/completions", json=CHAT).status_code == 200
        _reload(gw, base_config([{"name": "m", "provider": "mock"}]))
        assert other.post("/v1/chat/completions", json=CHAT).status_code == 401
        assert kept.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_a_demoted_config_key_gets_its_new_role_on_the_next_request(start_gateway: Start) -> None:
    gw = start_gateway(_config(role="user"))
    with _client(gw, OTHER_KEY) as other:
        assert other.post("/v1/chat/completions", json=CHAT).status_code == 200
        _reload(gw, _config(role="viewer"))
        assert other.post("/v1/chat/completions", json=CHAT).status_code == 403  # viewers read, never query
        assert other.get("/api/v1/stats").status_code == 200


def test_a_changed_key_value_refuses_the_old_one_at_once(start_gateway: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = start_gateway(_config(role="user"))
    with _client(gw, OTHER_KEY) as old:
        assert old.post("/v1/chat/completions", json=CHAT).status_code == 200
        monkeypatch.setenv("AIMM_NEW_KEY", "sk-new-0123456789abcdef")
        _reload(gw, _config(role="user") | {"auth": {"api_keys": [{"name": "other", "key": {"env": "AIMM_NEW_KEY"}}]}})
        assert old.post("/v1/chat/completions", json=CHAT).status_code == 401
        with _client(gw, "sk-new-0123456789abcdef") as new:
            assert new.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_a_replaced_admin_token_is_refused_at_once(start_gateway: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = start_gateway(_config())
    with _client(gw, ADMIN_TOKEN) as admin:
        assert admin.get("/admin/keys").status_code == 200
        monkeypatch.setenv("AIMM_NEW_ADMIN", "new-admin-token-0123456789")
        _reload(gw, _config() | {"admin": {"token": {"env": "AIMM_NEW_ADMIN"}}})
        assert admin.get("/admin/keys").status_code == 403  # a wrong admin token is a 403
        with _client(gw, "new-admin-token-0123456789") as new:
            assert new.get("/admin/keys").status_code == 200


def test_a_revoked_store_key_is_refused_at_once(start_gateway: Start, tmp_path: Path) -> None:
    config = _config()
    config["auth"]["key_store"] = {"path": str(tmp_path / "keys.json")}
    gw = start_gateway(config)
    with _client(gw, ADMIN_TOKEN) as admin:
        created = admin.post("/admin/keys", json={"name": "ci", "role": "user"}).json()
        with _client(gw, created["key"]) as user:
            for _ in range(3):
                assert user.post("/v1/chat/completions", json=CHAT).status_code == 200
            assert admin.delete(f"/admin/keys/{created['id']}").status_code == 200
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 401


async def test_only_matches_of_the_same_snapshot_are_known(start_gateway: Start) -> None:
    gw = start_gateway(_config(role="user"))
    auth, rt = gw.gateway.auth, gw.gateway.runtime
    assert auth.known(rt, OTHER_KEY) is None  # not seen yet
    identity = await auth.identify(rt, OTHER_KEY, "127.0.0.1", "rid")
    assert auth.known(rt, OTHER_KEY) is identity and identity.name == "other"
    assert auth.known(rt, None) is None and auth.known(rt, "") is None
    for wrong in ("sk-wrong-1", "sk-wrong-2"):  # failures are never remembered (nothing grows with them)
        with pytest.raises(Unauthorized):
            await auth.identify(rt, wrong, "127.0.0.1", "rid")
        assert auth.known(rt, wrong) is None
    _reload(gw, _config(role="user"))
    assert gw.gateway.runtime is not rt
    assert auth.known(gw.gateway.runtime, OTHER_KEY) is None  # a new snapshot starts afresh
