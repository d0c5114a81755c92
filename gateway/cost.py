"""Exact request cost from usage and a model's prices (Decimal, never float)."""

from __future__ import annotations

from decimal import Decimal

from aimm_gateway.canonical import Usage
from aimm_gateway.config import Pricing

_THOUSAND = Decimal(1000)


def request_cost(usage: Usage, pricing: Pricing) -> Decimal:
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = pricing.cached_input_per_1k if pricing.cached_input_per_1k is not None else pricing.input_per_1k
    return (
        (usage.prompt_tokens - cached) * pricing.input_per_1k
        + cached * cached_price
        + usage.completion_tokens * pricing.output_per_1k
    ) / _THOUSAND
