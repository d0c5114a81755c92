"""Keys over HTTP: created (secret shown once), used, rotated with overlap, revoked; developers see only theirs; audited."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aimm_gateway.security.audit import verify_file
from tests.gateway.conftest import ADMIN_TOKEN, RunningGateway, base_config

Start = Callable[[dict[str, Any]], RunningGateway]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _client(gw: RunningGateway, token: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {token}"}, timeout=30)


def test_key_lifecycle_over_http(start_gateway: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIMM_DEV_KEY", "sk-dev-0123456789abcdef")
    config = base_config([{"name": "m", "provider": "mock"}])
    config["auth"]["api_keys"].append({"name": "dev", "key": {"env": "AIMM_DEV_KEY"}, "role": "developer"})
    config["auth"]["key_store"] = {"path": str(tmp_path / "keys.json"), "rotation_overlap_s": 3600}
    audit_path = tmp_path / "audit.jsonl"
    config["hardening"] = {"audit": {"sink": "file", "path": str(audit_path)}}
    gw = start_gateway(config)
    with _client(gw, ADMIN_TOKEN) as admin, _client(gw, "sk-dev-0123456789abcdef") as dev:
        created = admin.post("/admin/keys", json={"name": "ci", "role": "user", "owner": "team-a"})
        assert created.status_code == 201
        body = created.json()
        secret, key_id = body["key"], body["id"]
        assert secret.startswith(f"aimm_{key_id}_")
        listed = admin.get("/admin/keys").json()["data"]
        assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
        assert secret.split("_")[-1] not in (tmp_path / "keys.json").read_text()
        with _client(gw, secret) as user:
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 200
            assert user.get("/api/v1/stats").status_code == 403  # role user: query only
            rotated = admin.post(f"/admin/keys/{key_id}/rotate", json={"overlap_s": 60}).json()
            assert rotated["key"] != secret and rotated["rotation_overlap_until"] is not None
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 200  # overlap: old still works
            with _client(gw, rotated["key"]) as new:
                assert new.post("/v1/chat/completions", json=CHAT).status_code == 200
                assert admin.delete(f"/admin/keys/{key_id}").json()["revoked_at"] is not None
                assert new.post("/v1/chat/completions", json=CHAT).status_code == 401
            assert user.post("/v1/chat/completions", json=CHAT).status_code == 401
        # A developer manages only their own keys, and cannot mint an admin.
        assert dev.post("/api/v1/keys", json={"name": "x", "role": "admin"}).status_code == 403
        own = dev.post("/api/v1/keys", json={"name": "mine", "role": "user"})
        assert own.status_code == 201 and own.json()["owner"] == "dev"
        assert [k["name"] for k in dev.get("/api/v1/keys").json()["data"]] == ["mine"]
        assert dev.delete(f"/api/v1/keys/{key_id}").status_code == 404  # someone else's
        assert dev.post(f"/api/v1/keys/{own.json()['id']}/rotate").status_code == 200
    actions = [orjson.loads(line)["action"] for line in audit_path.read_text().splitlines()]
    assert {"key.create", "key.rotate", "key.revoke", "auth.failure", "access.denied"} <= set(actions)
    assert verify_file(audit_path).ok
