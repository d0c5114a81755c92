"""The API key store managed over the admin API: create, list, rotate with overlap, expire, revoke.

A key reads `aimm_<id>_<secret>`. The id (12 hex chars) finds the record in O(1); the secret is
checked against salted scrypt hashes (at most two while a rotation overlaps). scrypt is slow on
purpose, so a verified key is remembered per process by its SHA-256 and each later request
costs one hash and a dict lookup; revocation, expiry and the end of an overlap are re-checked
on every hit against the process's view of the records, so the memo never outlives a secret.
Only hashes are ever stored. Backends: a JSON file or memory (one process, `FileKeyStore`)
and Redis (a fleet: `keys_redis.RedisKeyStore`, used whenever `state.redis` is set).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from aimm_gateway.security.identity import Identity, KeyLimits, Role

PREFIX = "aimm_"
_ID_LEN = 12
_MEMO_MAX = 10_000
# scrypt cost: interactive-login parameters. Keys are 256-bit random, so this guards a leaked
# store file against offline guessing of weak custom secrets, not against brute force of ours.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True, slots=True)
class SecretHash:
    salt: bytes
    digest: bytes
    valid_until: float | None = None  # set on the old secret when a rotation starts its overlap


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    name: str
    role: Role
    owner: str | None = None
    models: tuple[str, ...] = ()
    limits: KeyLimits = field(default_factory=KeyLimits)
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    secrets: tuple[SecretHash, ...] = ()
    team: str | None = None
    budget_usd: Decimal | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def identity(self) -> Identity:
        return Identity(
            name=self.name,
            role=self.role,
            source="store",
            owner=self.owner,
            team=self.team,
            models=self.models,
            limits=self.limits,
            budget_usd=self.budget_usd,
        )

    def public(self) -> dict[str, Any]:
        """What the admin API shows: never a secret or a hash."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "owner": self.owner,
            "team": self.team,
            "budget_usd": str(self.budget_usd) if self.budget_usd is not None else None,
            "models": list(self.models),
            "limits": _limits_dict(self.limits),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "rotation_overlap_until": next((s.valid_until for s in self.secrets if s.valid_until), None),
        }


def hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def split_key(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a store key, or None when it is not shaped like one."""
    if not presented.startswith(PREFIX):
        return None
    kid, sep, secret = presented[len(PREFIX) :].partition("_")
    if not sep or len(kid) != _ID_LEN or not secret:
        return None
    return kid, secret


Token = object  # what a backend needs to write a record only if nobody changed it meanwhile
_UPDATE_TRIES = 8


class KeyStoreConflict(Exception):
    """A record kept changing under a write (another process writing the same key)."""


class KeyStore:
    """One interface over the backends: the file (or memory) store here, Redis in keys_redis.py.

    Each process keeps a view of the records; `verify` reads the view (refreshed at most every
    `sync_interval_s`, so a revocation, an expiry change or a rotation made by another process is
    seen within that bound) and asks the backend directly for a key id it has not seen yet (so a
    key created elsewhere works at once). Admin reads and every write go to the backend.
    """

    def __init__(self, clock: Callable[[], float] = time.time, sync_interval_s: float = 1.0) -> None:
        self._clock = clock
        self._sync_interval = sync_interval_s
        self._synced_at = -float("inf")  # time.monotonic() of the last sync
        self._keys: dict[str, StoredKey] = {}
        self._memo: dict[bytes, tuple[str, bytes]] = {}  # sha256(key) -> (id, salt of the secret it matched)
        self._lock = asyncio.Lock()

    # -- what a backend provides ------------------------------------------------------------

    async def _load_all(self) -> None:
        """Replace the view by the backend's records (cheaply skipped when nothing changed)."""

    async def _fetch(self, kid: str) -> tuple[StoredKey | None, Token]:
        """One record straight from the backend, with the token `_commit` compares against."""
        return self._keys.get(kid), self._keys.get(kid)

    async def _commit(self, kid: str, token: Token, record: StoredKey) -> bool:
        """Store `record` if the stored one still matches `token`; False when it changed meanwhile."""
        if self._keys.get(kid) != token:
            return False
        self._keys[kid] = record
        return True

    async def close(self) -> None:
        """Release the backend's connections."""

    # -- reading -----------------------------------------------------------------------------

    async def _sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._synced_at >= self._sync_interval:
            await self._load_all()
            self._synced_at = now

    async def get(self, kid: str) -> StoredKey | None:
        """The current record (from the backend, not the view): admin actions act on the truth."""
        record, _ = await self._fetch(kid)
        return record

    async def keys(self, owner: str | None = None) -> list[StoredKey]:
        await self._sync(force=True)
        return [k for k in self._keys.values() if owner is None or k.owner == owner]

    def needs_hash(self, presented: str) -> bool:
        """True when verifying this key would run scrypt (not yet verified in this process)."""
        return hashlib.sha256(presented.encode()).digest() not in self._memo

    async def verify(self, presented: str) -> StoredKey | None:
        """The active key this secret belongs to, else None. O(1) lookup; scrypt only on a memo miss."""
        parts = split_key(presented)
        if parts is None:
            return None
        kid, secret = parts
        await self._sync()
        record = self._keys.get(kid)
        if record is None:
            record, _ = await self._fetch(kid)  # created by another process since the last sync
        now = self._clock()
        if record is None or not record.active(now):
            return None
        fingerprint = hashlib.sha256(presented.encode()).digest()
        memo = self._memo.get(fingerprint)
        if memo is not None and memo[0] == kid:
            return record if _valid_salt(record, memo[1], now) else None
        for candidate in record.secrets:
            if candidate.valid_until is not None and now >= candidate.valid_until:
                continue
            digest = await asyncio.to_thread(hash_secret, secret, candidate.salt)
            if hmac.compare_digest(digest, candidate.digest):
                if len(self._memo) >= _MEMO_MAX:
                    self._memo.clear()
                self._memo[fingerprint] = (kid, candidate.salt)
                return record
        return None

    # -- writing ----------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        role: Role,
        *,
        owner: str | None = None,
        models: Iterable[str] = (),
        limits: KeyLimits | None = None,
        expires_at: float | None = None,
        team: str | None = None,
        budget_usd: Decimal | None = None,
    ) -> tuple[StoredKey, str]:
        """A new key; the plaintext is returned once and never stored."""
        kid = secrets.token_hex(_ID_LEN // 2)
        secret = secrets.token_urlsafe(32)
        record = StoredKey(
            id=kid,
            name=name,
            role=role,
            owner=owner,
            models=tuple(models),
            limits=limits or KeyLimits(),
            created_at=self._clock(),
            expires_at=expires_at,
            secrets=(await _new_hash(secret),),
            team=team,
            budget_usd=budget_usd,
        )
        stored = await self._update(kid, lambda current: record if current is None else None)
        if stored is None:
            raise KeyStoreConflict(f"key id {kid} already exists")  # 48 random bits: not in practice
        return stored, f"{PREFIX}{kid}_{secret}"

    async def rotate(self, kid: str, overlap_s: float) -> tuple[StoredKey, str] | None:
        """A new secret for the same key; the current one keeps working for `overlap_s` seconds."""
        secret = secrets.token_urlsafe(32)
        fresh = await _new_hash(secret)

        def change(record: StoredKey | None) -> StoredKey | None:
            if record is None or not record.active(self._clock()):
                return None
            until = self._clock() + overlap_s
            old = tuple(replace(s, valid_until=until) for s in record.secrets[:1] if overlap_s > 0)
            return replace(record, secrets=(fresh, *old))

        rotated = await self._update(kid, change)
        return (rotated, f"{PREFIX}{kid}_{secret}") if rotated is not None else None

    async def revoke(self, kid: str) -> StoredKey | None:
        def change(record: StoredKey | None) -> StoredKey | None:
            if record is None or record.revoked_at is not None:
                return record
            return replace(record, revoked_at=self._clock())

        return await self._update(kid, change)

    async def _update(self, kid: str, change: Callable[[StoredKey | None], StoredKey | None]) -> StoredKey | None:
        """Read, change, write only if unchanged meanwhile (retried): two admins on two replicas
        rotating and revoking one key at once can't undo each other's write."""
        async with self._lock:
            for _ in range(_UPDATE_TRIES):
                current, token = await self._fetch(kid)
                wanted = change(current)
                if wanted is None or wanted is current:
                    return wanted
                if await self._commit(kid, token, wanted):
                    self._keys[kid] = wanted
                    return wanted
        raise KeyStoreConflict(f"key {kid} kept changing during the update; try again")


class FileKeyStore(KeyStore):
    """Keys as one JSON file (atomic replace), or only in memory without a path: one process."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time, sync_interval_s: float = 1.0) -> None:
        super().__init__(clock, sync_interval_s)
        self._path = path
        self._seen: tuple[int, int] | None = None
        self._reread()

    def _reread(self) -> None:
        """Re-read the file if another process changed it (mtime and size differ)."""
        if self._path is None:
            return
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._seen:
            return
        raw = orjson.loads(self._path.read_bytes() or b"{}")
        self._keys = {k["id"]: from_json(k) for k in raw.get("keys", [])}
        self._seen = stamp

    async def _load_all(self) -> None:
        self._reread()

    async def _fetch(self, kid: str) -> tuple[StoredKey | None, Token]:
        self._reread()
        return await super()._fetch(kid)

    async def _commit(self, kid: str, token: Token, record: StoredKey) -> bool:
        self._reread()
        if not await super()._commit(kid, token, record):
            return False
        self._save()
        return True

    def _save(self) -> None:
        if self._path is None:
            return
        blob = orjson.dumps({"keys": [to_json(k) for k in self._keys.values()]}, option=orjson.OPT_INDENT_2)
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._path)
        st = self._path.stat()
        self._seen = (st.st_mtime_ns, st.st_size)


def _valid_salt(record: StoredKey, salt: bytes, now: float) -> bool:
    return any(s.salt == salt and (s.valid_until is None or now < s.valid_until) for s in record.secrets)


async def _new_hash(secret: str) -> SecretHash:
    salt = os.urandom(16)
    return SecretHash(salt=salt, digest=await asyncio.to_thread(hash_secret, secret, salt))


def _limits_dict(limits: KeyLimits) -> dict[str, int | None]:
    return {
        "requests_per_minute": limits.requests_per_minute,
        "tokens_per_minute": limits.tokens_per_minute,
        "concurrent_requests": limits.concurrent_requests,
    }


def to_json(k: StoredKey) -> dict[str, Any]:
    return {
        **k.public(),
        "secrets": [{"salt": s.salt.hex(), "scrypt": s.digest.hex(), "valid_until": s.valid_until} for s in k.secrets],
    }


def from_json(d: dict[str, Any]) -> StoredKey:
    return StoredKey(
        id=d["id"],
        name=d["name"],
        role=Role(d["role"]),
        owner=d.get("owner"),
        models=tuple(d.get("models") or ()),
        limits=KeyLimits(**(d.get("limits") or {})),
        created_at=d.get("created_at", 0.0),
        expires_at=d.get("expires_at"),
        revoked_at=d.get("revoked_at"),
        secrets=tuple(
            SecretHash(bytes.fromhex(s["salt"]), bytes.fromhex(s["scrypt"]), s.get("valid_until"))
            for s in d.get("secrets", [])
        ),
        team=d.get("team"),
        budget_usd=Decimal(d["budget_usd"]) if d.get("budget_usd") is not None else None,
    )
