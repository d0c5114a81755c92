"""The Identity of a key from the config file (built once per runtime snapshot)."""

from __future__ import annotations

from aimm_gateway.config import ApiKey
from aimm_gateway.security.identity import Identity, KeyLimits


def config_identity(entry: ApiKey) -> Identity:
    lim = entry.limits
    return Identity(
        name=entry.name,
        role=entry.role,
        source="config",
        owner=entry.owner,
        team=entry.team,
        models=tuple(entry.models),
        limits=KeyLimits(lim.requests_per_minute, lim.tokens_per_minute, lim.concurrent_requests),
        budget_usd=entry.budget_usd,
    )
