"""Key store: salted hashes only on disk, O(1) lookup, rotation overlap, expiry, revocation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson

from aimm_gateway.security.identity import KeyLimits, Role
from aimm_gateway.security.keys import FileKeyStore, split_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_create_verify_and_only_hashes_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    record, plaintext = await store.create("ci-bot", Role.USER, owner="alice", limits=KeyLimits(requests_per_minute=5))
    assert split_key(plaintext) is not None and split_key(plaintext)[0] == record.id  # type: ignore[index]
    assert (await store.verify(plaintext)) == record
    assert (await store.verify(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"))) is None
    text = path.read_text()
    secret = split_key(plaintext)[1]  # type: ignore[index]  # the whole secret: token_urlsafe may hold "_"
    assert secret not in text and "scrypt" in text
    assert path.stat().st_mode & 0o077 == 0
    # Another process (a fresh store on the same file) sees the key and verifies it.
    other = FileKeyStore(path)
    found = await other.verify(plaintext)
    assert found is not None and found.identity().name == "ci-bot" and found.identity().role is Role.USER
    assert found.limits.requests_per_minute == 5


async def test_unknown_or_malformed_keys_are_refused() -> None:
    store = FileKeyStore(None)
    assert await store.verify("sk-something") is None
    assert await store.verify("aimm_000000000000_whatever") is None
    assert await store.verify("aimm_short_x") is None


async def test_rotation_overlap_then_old_secret_stops(tmp_path: Path) -> None:
    clock = Clock()
    store = FileKeyStore(tmp_path / "k.json", clock=clock)
    record, old = await store.create("svc", Role.DEVELOPER)
    assert await store.verify(old) is not None  # memoised from here on
    rotated = await store.rotate(record.id, overlap_s=60)
    assert rotated is not None
    _, new = rotated
    assert await store.verify(new) is not None and await store.verify(old) is not None
    clock.now += 61
    assert await store.verify(new) is not None
    assert await store.verify(old) is None  # the memo does not outlive the overlap
    assert rotated[0].public()["rotation_overlap_until"] == 1_000_060.0


async def test_rotation_without_overlap_and_expiry_and_revocation(tmp_path: Path) -> None:
    clock = Clock()
    store = FileKeyStore(tmp_path / "k.json", clock=clock)
    record, old = await store.create("svc", Role.USER, expires_at=clock.now + 100)
    rotated = await store.rotate(record.id, overlap_s=0)
    assert rotated is not None
    new = rotated[1]
    assert await store.verify(old) is None and await store.verify(new) is not None
    clock.now += 100
    assert await store.verify(new) is None  # expired
    record2, key2 = await store.create("other", Role.VIEWER)
    assert await store.verify(key2) is not None
    revoked = await store.revoke(record2.id)
    assert revoked is not None and revoked.revoked_at == clock.now
    assert await store.verify(key2) is None
    assert await store.rotate(record2.id, 10) is None  # a revoked key cannot be revived
    saved = orjson.loads((tmp_path / "k.json").read_bytes())
    assert {k["name"] for k in saved["keys"]} == {"svc", "other"}


async def test_public_view_has_no_secret_material() -> None:
    store = FileKeyStore(None)
    record, _ = await store.create("x", Role.ADMIN, models=["gpt-*"])
    shown = record.public()
    assert "secrets" not in shown and shown["models"] == ["gpt-*"] and shown["role"] == "admin"
    assert record.identity().may_use("gpt-4o") and not record.identity().may_use("claude")


async def test_team_and_budget_survive_the_file_and_reach_the_identity(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    _, plaintext = await store.create("app", Role.USER, team="payments", budget_usd=Decimal("12.50"))
    _, plain_old = await store.create("old", Role.USER)
    raw = orjson.loads(path.read_bytes())["keys"]
    assert {k["name"]: (k["team"], k["budget_usd"]) for k in raw} == {"app": ("payments", "12.50"), "old": (None, None)}
    found = await FileKeyStore(path).verify(plaintext)  # another process reads them back
    assert found is not None
    identity = found.identity()
    assert identity.team == "payments" and identity.budget_usd == Decimal("12.50")
    older = await FileKeyStore(path).verify(plain_old)
    assert older is not None and older.identity().team is None and older.identity().budget_usd is None
