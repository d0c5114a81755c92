"""AES-256-GCM secrets at rest: round trip, nonce per value, model name as AAD, tamper, KEK rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import orjson
import pytest

from aimm_gateway.security.secret_store import SecretStore, SecretStoreError, parse_kek


def test_round_trip_and_nothing_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    kek = os.urandom(32)
    store = SecretStore(path, kek)
    store.put("gpt-4o", "sk-live-abcdef123456")
    store.put("claude", "sk-live-abcdef123456")  # same value, different model
    assert "sk-live" not in path.read_text()
    entries = orjson.loads(path.read_bytes())["secrets"]
    assert entries["gpt-4o"]["nonce"] != entries["claude"]["nonce"]
    assert len(base64.b64decode(entries["gpt-4o"]["nonce"])) == 12
    assert entries["gpt-4o"]["ct"] != entries["claude"]["ct"]
    reopened = SecretStore(path, kek)
    assert reopened.get("gpt-4o") == "sk-live-abcdef123456" and reopened.names() == ["claude", "gpt-4o"]
    assert reopened.delete("claude") and reopened.get("claude") is None


def test_tampering_moving_and_wrong_kek_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    kek = os.urandom(32)
    SecretStore(path, kek).put("a", "secret-a")
    SecretStore(path, kek).put("b", "secret-b")
    data = orjson.loads(path.read_bytes())
    # Flip one ciphertext bit.
    ct = bytearray(base64.b64decode(data["secrets"]["a"]["ct"]))
    ct[0] ^= 1
    tampered = {
        **data,
        "secrets": {**data["secrets"], "a": {**data["secrets"]["a"], "ct": base64.b64encode(bytes(ct)).decode()}},
    }
    path.write_bytes(orjson.dumps(tampered))
    with pytest.raises(SecretStoreError, match="'a'"):
        SecretStore(path, kek).get("a")
    # Move b's ciphertext under a's name: the associated data (model name) no longer matches.
    moved = {**data, "secrets": {"a": data["secrets"]["b"]}}
    path.write_bytes(orjson.dumps(moved))
    with pytest.raises(SecretStoreError):
        SecretStore(path, kek).get("a")
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(SecretStoreError, match="another key-encryption key"):
        SecretStore(path, os.urandom(32))


def test_kek_rotation_reencrypts(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    old, new = os.urandom(32), os.urandom(32)
    SecretStore(path, old).put("m", "upstream-key")
    before = orjson.loads(path.read_bytes())
    # Restart with the new KEK and the old one as `previous_kek`: the store is re-encrypted.
    rotated = SecretStore(path, new, previous_kek=old)
    after = orjson.loads(path.read_bytes())
    assert after["kek_id"] != before["kek_id"] and after["secrets"]["m"]["ct"] != before["secrets"]["m"]["ct"]
    assert rotated.get("m") == "upstream-key"
    assert SecretStore(path, new).get("m") == "upstream-key"
    with pytest.raises(SecretStoreError):
        SecretStore(path, old)  # the old KEK no longer opens it


def test_kek_parsing() -> None:
    raw = os.urandom(32)
    assert parse_kek(raw.hex()) == raw and parse_kek(base64.b64encode(raw).decode()) == raw
    with pytest.raises(SecretStoreError):
        parse_kek("too-short")
