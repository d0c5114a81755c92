"""Provider keys at rest, encrypted with AES-256-GCM under a key-encryption key (KEK).

Each value gets a fresh random 96-bit nonce; the model name is the associated data, so a
ciphertext moved to another model's entry fails to decrypt. The file records a short KEK
fingerprint, so a wrong KEK is reported as such rather than as corrupt data. Rotation
re-encrypts every entry under the new KEK in one atomic file replace. Nothing here ever
returns a value to an API; only the runtime reads them to call upstreams.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aimm_gateway.config import SecretStoreSettings

NONCE_BYTES = 12


class SecretStoreError(Exception):
    """Wrong KEK, tampered entry, or an unusable KEK value."""


def parse_kek(value: str) -> bytes:
    """A 32-byte key given as 64 hex characters or as base64."""
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SecretStoreError("the key-encryption key must be 32 bytes, as hex or base64") from exc
    if len(raw) != 32:
        raise SecretStoreError(f"the key-encryption key must be 32 bytes (got {len(raw)})")
    return raw


def kek_id(kek: bytes) -> str:
    return hashlib.sha256(b"aimm-kek:" + kek).hexdigest()[:16]


class SecretStore:
    def __init__(self, path: Path, kek: bytes, previous_kek: bytes | None = None) -> None:
        self._path = path
        self._kek = kek
        self._entries: dict[str, dict[str, str]] = {}
        if path.exists():
            data: dict[str, Any] = orjson.loads(path.read_bytes() or b"{}")
            self._entries = dict(data.get("secrets", {}))
            stored_id = data.get("kek_id")
            if stored_id and stored_id != kek_id(kek):
                if previous_kek is not None and stored_id == kek_id(previous_kek):
                    self._kek = previous_kek
                    self.rotate(kek)  # the operator switched keys: re-encrypt under the new one
                else:
                    raise SecretStoreError(f"{path}: encrypted under another key-encryption key")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def put(self, model: str, value: str) -> None:
        self._entries[model] = _seal(self._kek, model, value)
        self._save()

    def get(self, model: str) -> str | None:
        entry = self._entries.get(model)
        return None if entry is None else _open(self._kek, model, entry)

    def delete(self, model: str) -> bool:
        if self._entries.pop(model, None) is None:
            return False
        self._save()
        return True

    def rotate(self, new_kek: bytes) -> int:
        """Re-encrypt every entry under `new_kek`; returns how many."""
        plain = {m: _open(self._kek, m, e) for m, e in self._entries.items()}
        self._kek = new_kek
        self._entries = {m: _seal(new_kek, m, v) for m, v in plain.items()}
        self._save()
        return len(plain)

    def _save(self) -> None:
        blob = orjson.dumps({"kek_id": kek_id(self._kek), "secrets": self._entries}, option=orjson.OPT_INDENT_2)
        tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._path)


def _seal(kek: bytes, model: str, value: str) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)
    ct = AESGCM(kek).encrypt(nonce, value.encode(), model.encode())
    return {"nonce": base64.b64encode(nonce).decode(), "ct": base64.b64encode(ct).decode()}


def _open(kek: bytes, model: str, entry: dict[str, str]) -> str:
    try:
        nonce, ct = base64.b64decode(entry["nonce"]), base64.b64decode(entry["ct"])
        return AESGCM(kek).decrypt(nonce, ct, model.encode()).decode()
    except (InvalidTag, KeyError, ValueError, binascii.Error) as exc:
        raise SecretStoreError(f"secret for {model!r} failed authentication (tampered or wrong key)") from exc


def open_secret_store(settings: SecretStoreSettings) -> SecretStore:
    """The store named by `admin.secret_store`, its KEK (and, mid-rotation, the previous one) resolved."""
    kek = settings.kek.resolve()
    if kek is None:
        raise SecretStoreError(f"admin.secret_store.kek: {settings.kek.describe()} is not set")
    previous = settings.previous_kek.resolve() if settings.previous_kek is not None else None
    return SecretStore(Path(settings.path), parse_kek(kek), parse_kek(previous) if previous else None)
