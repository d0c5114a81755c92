"""Per-key budgets: a key's `budget_usd` as a block budget over that key's spend (pure).

A key with `budget_usd` (config `auth.api_keys[]`, or a key created over `/admin/keys`) is held
to it per calendar month (UTC) by the same reserve-then-settle machinery as a CostBudget. The
budget counts the key's *name* (what usage rows carry), so two keys sharing a name share it.
"""

from __future__ import annotations

from decimal import Decimal

from aimm_gateway.config import BudgetConfig
from aimm_gateway.security.identity import Identity

PREFIX = "key:"
_MAX_KNOWN = 10_000


def key_budget(name: str, limit_usd: Decimal) -> BudgetConfig:
    # No thresholds: alerts and Events belong to CostBudgets; a key's budget only blocks.
    return BudgetConfig(
        name=f"{PREFIX}{name}", limit_usd=limit_usd, period="monthly", api_keys=[name], thresholds=[], action="block"
    )


class KeyBudgets:
    """One BudgetConfig per (key name, amount), built once: the enforcer caches a budget's
    period by object, and validating a config on every request would cost more than the check."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, Decimal], BudgetConfig] = {}

    def budget_for(self, identity: Identity | None) -> tuple[BudgetConfig | None, bool]:
        """The caller's key budget (None: the key has none), and whether it is new to this process."""
        if identity is None or identity.budget_usd is None:
            return None, False
        slot = (identity.name, identity.budget_usd)
        found = self._known.get(slot)
        if found is not None:
            return found, False
        if len(self._known) >= _MAX_KNOWN:
            self._known.clear()  # bounded: keys are created over the API
        found = self._known[slot] = key_budget(identity.name, identity.budget_usd)
        return found, True
