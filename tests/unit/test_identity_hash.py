"""`Identity` keeps its hash after the first use (security/identity.py): equal identities must
still hash alike and find each other in a dict, whichever was hashed first."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aimm_gateway.security.identity import Identity, KeyLimits, Role


def _make(**extra: Any) -> Identity:
    return Identity(name="ci", role=Role.USER, source="store", owner="team-a", **extra)


def test_equal_identities_hash_alike_and_find_each_other() -> None:
    first = _make(limits=KeyLimits(requests_per_minute=5), budget_usd=Decimal("2"))
    levels = {first: "level"}  # hashed (and kept) here
    again = _make(limits=KeyLimits(requests_per_minute=5), budget_usd=Decimal("2"))  # not hashed yet
    assert again == first and hash(again) == hash(first) == hash(first)
    assert levels[again] == "level"


def test_a_changed_field_is_another_identity() -> None:
    base = _make()
    levels = {base: "level"}
    for other in (
        _make(limits=KeyLimits(requests_per_minute=5)),
        _make(budget_usd=Decimal("1")),
        _make(models=("gpt-*",)),
        Identity(name="ci", role=Role.VIEWER, source="store", owner="team-a"),
    ):
        assert other != base and other not in levels


def test_the_kept_hash_is_not_part_of_equality_or_repr() -> None:
    hashed, fresh = _make(), _make()
    hash(hashed)
    assert hashed == fresh and "_hash" not in repr(hashed)
