"""Every route declares one permission; each role can do exactly what docs/security.md's table says."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route, WebSocketRoute

from aimm_gateway.api.access import ACCESS, UndeclaredRoute, protect
from aimm_gateway.app import create_app
from aimm_gateway.config import parse_config
from aimm_gateway.security.identity import ROLE_PERMISSIONS, Permission, Role
from aimm_gateway.service import Gateway
from tests.gateway.conftest import ADMIN_TOKEN, RunningGateway, base_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROLE_KEYS = {role: f"sk-role-{role.value}-0123456789" for role in Role}
Start = Callable[[dict[str, Any]], RunningGateway]


def documented_matrix() -> dict[Permission, set[Role]]:
    block = re.search(r"<!-- role-table -->\n(.*?)\n<!-- /role-table -->", DOC.read_text(), re.S)
    assert block is not None, "docs/security.md lost its role table"
    lines = block.group(1).strip().splitlines()
    roles = [Role(c.strip()) for c in lines[0].strip("|").split("|")[1:5]]
    out: dict[Permission, set[Role]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[Permission(cells[0])] = {role for role, mark in zip(roles, cells[1:5], strict=True) if mark == "✓"}
    return out


def test_every_route_declares_exactly_one_permission() -> None:
    app = create_app(Gateway(parse_config({"models": [{"name": "m", "provider": "mock"}]})))
    seen = set()
    for route in app.routes:
        permission = getattr(route.endpoint, "required_permission", None)
        assert isinstance(permission, Permission), f"{route.path} has no declared permission"
        if isinstance(route, WebSocketRoute):  # checks its own permission (the handshake is a GET)
            seen.add((route.path, "GET"))
            continue
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                seen.add((route.path, method))
    assert seen == set(ACCESS), "ACCESS lists a route the app does not have (or the reverse)"


def test_an_undeclared_route_refuses_to_start() -> None:
    async def endpoint(request: Any) -> None: ...

    with pytest.raises(UndeclaredRoute, match="/secret"):
        protect([Route("/secret", endpoint, methods=["GET"])])


def test_documented_table_is_the_code() -> None:
    documented = documented_matrix()
    assert set(documented) == set(Permission)
    for permission, roles in documented.items():
        assert roles == {r for r in Role if permission in ROLE_PERMISSIONS[r]}, permission


def _matrix_config(tmp_path: Path) -> dict[str, Any]:
    keys = [
        {"name": f"{role.value}-key", "key": {"env": f"AIMM_ROLE_{role.value.upper()}"}, "role": role.value}
        for role in Role
    ]
    config = base_config([{"name": "m", "provider": "mock"}])
    config["auth"] = {"api_keys": keys, "key_store": {"path": str(tmp_path / "keys.json")}}
    return config


def _call(client: httpx.Client, path: str, method: str, token: str | None) -> httpx.Response:
    url = path.replace("{key_id}", "000000000000").replace("{name}", "m")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, url, json=body, headers=headers)


def test_role_matrix_over_http(start_gateway: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for role, key in ROLE_KEYS.items():
        monkeypatch.setenv(f"AIMM_ROLE_{role.value.upper()}", key)
    gw = start_gateway(_matrix_config(tmp_path))
    documented = documented_matrix()
    callers = {**{role: ROLE_KEYS[role] for role in Role}, "admin-token": ADMIN_TOKEN}
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        for (path, method), permission in sorted(ACCESS.items()):
            if path == "/api/v1/ws":  # a WebSocket handshake, not plain HTTP: tests/live covers its roles
                continue
            for who, token in callers.items():
                role = Role.ADMIN if who == "admin-token" else who
                assert isinstance(role, Role)
                status = _call(client, path, method, token).status_code
                allowed = role in documented[permission]
                if allowed:
                    assert status not in (401, 403), (path, method, who, status)
                else:
                    assert status == 403, (path, method, who, status)
            anonymous = _call(client, path, method, None).status_code
            assert (anonymous == 401) == (permission is not Permission.PUBLIC), (path, method, anonymous)


def test_scoped_key_may_use_only_its_models(start_gateway: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMM_SCOPED", "sk-scoped-0123456789")
    config = base_config([{"name": "gpt-mini", "provider": "mock"}, {"name": "claude", "provider": "mock"}])
    config["auth"]["api_keys"].append(
        {"name": "scoped", "key": {"env": "AIMM_SCOPED"}, "role": "user", "models": ["gpt-*"]}
    )
    gw = start_gateway(config)
    headers = {"authorization": "Bearer sk-scoped-0123456789"}
    with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as c:
        ok = c.post("/v1/chat/completions", json={"model": "gpt-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200
        no = c.post("/v1/chat/completions", json={"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
        assert no.status_code == 403 and no.json()["error"]["code"] == "model_not_allowed"


def test_stats_can_be_opened_for_a_poller_and_nothing_else(start_gateway: Start) -> None:
    config = base_config([{"name": "m", "provider": "mock"}])
    config["auth"]["stats_without_credentials"] = True
    gw = start_gateway(config)
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        assert c.get("/api/v1/stats").status_code == 200
        assert c.get("/api/v1/budgets").status_code == 200
        assert c.get("/api/v1/metrics").status_code == 401  # the rest of `read` still needs a viewer
        assert c.get("/api/v1/stats", headers={"authorization": "Bearer wrong"}).status_code == 401
