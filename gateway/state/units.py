"""Money in shared state as integers: 1 unit = 1e-10 USD.

Redis counts integers exactly (INCRBY) but floats approximately (INCRBYFLOAT); costs are
Decimal. 1e-10 USD is finer than any price (a 1e-6 USD/1k-token price is 1e-9 per token), and
a signed 64-bit counter still holds ~920 million USD.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

_UNIT = Decimal("1e-10")
_PER_USD = Decimal(10) ** 10


def to_units(amount: Decimal, up: bool = False) -> int:
    """USD → units; `up` rounds reservations up so a reservation never under-covers its cost."""
    return int((amount * _PER_USD).to_integral_value(ROUND_CEILING if up else ROUND_HALF_UP))


def from_units(units: int) -> Decimal:
    return Decimal(units) * _UNIT
