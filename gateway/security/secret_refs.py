"""Which `{env}`/`{file}` references a model added over the admin API may use (probe finding 5).

The config file is trusted (its author controls the gateway's environment anyway); a caller of
the admin API is not: without this check it could point a model at `{env: AIMM_ADMIN_TOKEN}`
or `{file: /etc/...}` and a base URL of its choice, and the gateway would send the secret
there. Only allow-listed env prefixes and directories (symlinks and `..` resolved) pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pydantic import BaseModel

from aimm_gateway.config import SecretRef, SecretRefAllowList


def secret_refs(model: BaseModel, path: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Every SecretRef inside a config object, with its field path (defaults included)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        if isinstance(value, SecretRef):
            yield where, value
        elif isinstance(value, BaseModel):
            yield from secret_refs(value, where)


def ref_allowed(ref: SecretRef, allow: SecretRefAllowList) -> bool:
    if ref.env is not None:
        return any(ref.env.startswith(prefix) for prefix in allow.env_prefixes if prefix)
    assert ref.file is not None
    real = os.path.realpath(ref.file)
    return any(real.startswith(os.path.join(os.path.realpath(d), "")) for d in allow.file_dirs if d)


def refused_refs(model: BaseModel, allow: SecretRefAllowList) -> list[str]:
    """Field paths of references this model may not use (empty: all fine)."""
    return [f"{where} ({ref.describe()})" for where, ref in secret_refs(model) if not ref_allowed(ref, allow)]
