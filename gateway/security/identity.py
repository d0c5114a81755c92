"""Who is calling, and what they may do. The contract every auth source produces.

Sources (config keys, the key store, JWT/OIDC) all resolve a caller to one `Identity`;
handlers and stages only ever look at this object, never at how it was obtained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fnmatch import fnmatchcase


class Role(StrEnum):
    ADMIN = "admin"  # everything
    DEVELOPER = "developer"  # query + read stats/analytics + manage their own keys
    USER = "user"  # query
    VIEWER = "viewer"  # read-only: models, stats, analytics, dashboards


class Permission(StrEnum):
    """What an endpoint needs. Every route declares exactly one (see api/access.py)."""

    PUBLIC = "public"  # /health, /ready: no credentials
    QUERY = "query"  # send prompts
    READ = "read"  # models, stats, analytics, live feed, console data
    OWN_KEYS = "own_keys"  # create/list/rotate/revoke one's own keys
    ADMIN = "admin"  # models, keys of others, budgets, config


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DEVELOPER: frozenset({Permission.PUBLIC, Permission.QUERY, Permission.READ, Permission.OWN_KEYS}),
    Role.USER: frozenset({Permission.PUBLIC, Permission.QUERY}),
    Role.VIEWER: frozenset({Permission.PUBLIC, Permission.READ}),
}


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Optional per-identity limits; None means 'no limit of this kind at this level'."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    name: str  # key name or JWT subject: shown in logs, audit, usage rows (never a secret)
    role: Role
    source: str = "config"  # config | store | jwt | admin_token | anonymous
    owner: str | None = None
    team: str | None = None
    models: tuple[str, ...] = ()  # globs over model/route names; empty = all
    limits: KeyLimits = field(default_factory=KeyLimits)
    budget_usd: Decimal | None = None
    _hash: int = field(default=0, init=False, repr=False, compare=False)  # 0: not computed yet

    def __hash__(self) -> int:
        # Hashed on every request (rate limits find the caller's level by identity): computed on the
        # first use and kept, not by the generated `__hash__` on each lookup, which hashes the role
        # enum and the limits in Python (0.45 against 0.15 µs a lookup). The same fields as that
        # hash, so equal identities hash alike; an identity made per request (a store key, a JWT)
        # pays it once, as before.
        found = self._hash
        if not found:
            found = hash(
                (self.name, self.role, self.source, self.owner, self.team, self.models, self.limits, self.budget_usd)
            )
            object.__setattr__(self, "_hash", found)
        return found

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def may_use(self, model_or_route: str) -> bool:
        return not self.models or any(fnmatchcase(model_or_route, g) for g in self.models)


ANONYMOUS = Identity(name="anonymous", role=Role.ADMIN, source="anonymous")  # auth.enabled: false only
