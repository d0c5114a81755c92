"""Exact request cost from usage and a model's prices (Decimal, never float)."""

from __future__ import annotations

from decimal import Decimal

from aimm_gateway.canonical import Usage
from aimm_gateway.config import Pricing

_THOUSAND = Decimal(1000)


def request_cost(usage: Usage, pricing: Pricing) -> Decimal:
    if not usage.cached_tokens and pricing.cached_input_per_1k is None:
        # The usual answer: no cached tokens, whose term (0 times the input price) would add a zero of
        # the first term's own exponent, which changes neither its value nor its digits.
        return (
            usage.prompt_tokens * pricing.input_per_1k + usage.completion_tokens * pricing.output_per_1k
        ) / _THOUSAND
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = pricing.cached_input_per_1k if pricing.cached_input_per_1k is not None else pricing.input_per_1k
    return (
        (usage.prompt_tokens - cached) * pricing.input_per_1k
        + cached * cached_price
        + usage.completion_tokens * pricing.output_per_1k
    ) / _THOUSAND
