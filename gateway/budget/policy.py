"""Which budgets a request touches, and what to reserve for it (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from aimm_gateway.canonical import Usage
from aimm_gateway.config import BudgetConfig, ModelConfig
from aimm_gateway.cost import request_cost

# The prompt is estimated (~4 chars/token) before the call; reserve a margin so that an estimate
# that is a little low still leaves the reservation covering the real cost.
PROMPT_MARGIN = 1.2
PROMPT_SLACK = 16


@dataclass(frozen=True, slots=True)
class Caller:
    key_name: str | None
    team: str | None
    route: str | None  # the route name when the client called a route
    namespace: str | None = None  # the serving gateway's namespace (Runtime.namespace)


def in_scope(budget: BudgetConfig, caller: Caller, model: str | None) -> bool:
    """Does this budget count a request by `caller` answered by `model` (None: any candidate)?"""
    if budget.api_keys and caller.key_name not in budget.api_keys:
        return False
    if budget.teams and caller.team not in budget.teams:
        return False
    if budget.namespace is not None and caller.namespace != budget.namespace:
        return False
    if budget.routes and caller.route not in budget.routes:
        return False
    return not budget.models or model is None or model in budget.models


def touching(budgets: list[BudgetConfig], caller: Caller, candidates: list[str]) -> list[BudgetConfig]:
    """Budgets that may count this request: in scope for the caller and for at least one candidate."""
    return [
        b for b in budgets if in_scope(b, caller, None) and (not b.models or any(m in b.models for m in candidates))
    ]


def reservation(prompt_tokens: int, max_output_tokens: int | None, model: ModelConfig) -> Decimal:
    """The most this request can cost on `model`: the prompt (with margin) plus the most it may write."""
    prompt = math.ceil(prompt_tokens * PROMPT_MARGIN) + PROMPT_SLACK
    output = min(max_output_tokens or model.max_output_tokens, model.max_output_tokens)
    return request_cost(Usage(prompt_tokens=prompt, completion_tokens=output), model.pricing)


def percent(total: Decimal, limit: Decimal) -> Decimal:
    return total * 100 / limit if limit > 0 else Decimal(0)


def newly_reached(pct: Decimal, thresholds: list[int], announced: set[int]) -> list[int]:
    """Thresholds reached at `pct` and not yet announced (each fires once per period)."""
    return sorted(t for t in thresholds if pct >= t and t not in announced)
