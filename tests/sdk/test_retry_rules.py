"""The retry rules as pure functions (the live tests prove the client follows them)."""

from __future__ import annotations

from email.utils import formatdate
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def policy(sdk: ModuleType) -> Any:
    return sdk.RetryPolicy(max_retries=2, initial_backoff=0.5, max_backoff=8.0, max_retry_after=60.0)


# (status, idempotent call, retried): refused calls always; maybe-done calls only if idempotent.
CASES = [
    (429, False, True),
    (503, False, True),
    (502, False, False),
    (504, False, False),
    (502, True, True),
    (504, True, True),
    (500, True, False),
    (400, True, False),
    (401, False, False),
    (404, True, False),
]


@pytest.mark.parametrize(("status", "idempotent", "retried"), CASES)
def test_which_statuses_are_retried(policy: Any, status: int, idempotent: bool, retried: bool) -> None:
    delay = policy.delay_for_status(1, status, idempotent, None)
    assert (delay is not None) is retried
    if retried:
        assert 0.25 <= delay <= 0.5  # full jitter in [ceiling/2, ceiling]


def test_retry_after_wins_and_is_capped(sdk: ModuleType, policy: Any) -> None:
    assert policy.delay_for_status(1, 429, False, 2.5) == 2.5
    assert policy.delay_for_status(1, 429, False, 61.0) is None
    assert policy.delay_for_status(3, 429, False, 1.0) is None  # out of retries
    told = sdk.RetryPolicy(retry_non_idempotent=True)
    assert told.delay_for_status(1, 502, False, None) is not None


def test_connection_failures(policy: Any) -> None:
    assert policy.delay_for_connection(1, sent=False, idempotent=False) is not None
    assert policy.delay_for_connection(1, sent=True, idempotent=False) is None
    assert policy.delay_for_connection(1, sent=True, idempotent=True) is not None


def test_backoff_grows_to_its_ceiling(policy: Any) -> None:
    delays = [policy.backoff(n) for n in range(1, 8)]
    assert delays[0] <= 0.5 and 4.0 <= delays[-1] <= 8.0


def test_parse_retry_after(sdk: ModuleType) -> None:
    from aimm_client._retry import parse_retry_after

    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None
    now = 1_800_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == pytest.approx(30, abs=1)
