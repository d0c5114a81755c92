"""Keys managed over /admin/keys on one gateway process work, rotate and stop on another at once
(two real `aimm gateway serve` processes sharing one real redis-server)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests.backing import RedisServer
from tests.servers import gateway_processes

ADMIN = "admin-fleet-0123456789"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
SYNC_BOUND_S = 1.0  # docs/security.md: other processes see a revocation within 1 s


def _chat(url: str, key: str) -> int:
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}).status_code


def _refused_after(url: str, key: str, limit_s: float) -> float:
    """Seconds until `key` gets 401 on `url` (polled), failing past `limit_s`."""
    started = time.monotonic()
    while _chat(url, key) != 401:
        assert time.monotonic() - started < limit_s, f"{key[:18]}… still accepted after {limit_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_keys_created_rotated_and_revoked_on_one_process_hold_on_the_other(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = {
        "admin": {"token": {"env": "AIMM_FLEET_ADMIN"}},
        "auth": {"key_store": {"rotation_overlap_s": 3600}},
        "models": [{"name": "m", "provider": "mock"}],
        "state": {
            "redis": {
                "url": {"env": "AIMM_FLEET_REDIS"},
                "key_prefix": f"keys-fleet-{uuid.uuid4().hex[:8]}:",
                "timeout_ms": 2000,  # gateways + client + redis share 2 busy cores here
            }
        },
        "hardening": {"audit": {"sink": "off"}},
    }
    env = {"AIMM_FLEET_ADMIN": ADMIN, "AIMM_FLEET_REDIS": redis_server.url}
    with (
        gateway_processes(config, env, tmp_path, 2) as (one, two),
        httpx.Client(headers={"authorization": f"Bearer {ADMIN}"}, timeout=30) as admin,
    ):
        created = admin.post(f"{one}/admin/keys", json={"name": "ci", "role": "user"})
        assert created.status_code == 201
        key, key_id = created.json()["key"], created.json()["id"]
        assert _chat(two, key) == 200  # at once, on the process that did not create it
        assert [k["id"] for k in admin.get(f"{two}/admin/keys").json()["data"]] == [key_id]

        # Rotate on two with a short overlap: both secrets work on one, then only the new one.
        rotated = admin.post(f"{two}/admin/keys/{key_id}/rotate", json={"overlap_s": 2})
        assert rotated.status_code == 200
        new = rotated.json()["key"]
        assert _chat(one, new) == 200 and _chat(one, key) == 200
        assert _refused_after(one, key, 2 + SYNC_BOUND_S + 1.0) > 0
        assert _chat(one, new) == 200 and _chat(two, new) == 200

        # Revoke on one: two (which has verified the key and memoised it) refuses it within the bound.
        assert admin.delete(f"{one}/admin/keys/{key_id}").status_code == 200
        assert _refused_after(two, new, SYNC_BOUND_S + 0.5) <= SYNC_BOUND_S + 0.5
        assert admin.post(f"{two}/admin/keys/{key_id}/rotate").status_code == 409  # revoked everywhere
