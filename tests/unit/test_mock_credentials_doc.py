"""The mocks' test credentials are findable: `aimm mock-provider --help` and docs/providers.md
show the very values the mocks check (taken from the mock's own module, not copied here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aimm_gateway.mock import bedrock_wire

DOC = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
SIGV4_VALUES = [
    bedrock_wire.ACCESS_KEY_ID,
    bedrock_wire.SECRET_ACCESS_KEY,
    bedrock_wire.SESSION_ACCESS_KEY_ID,
    bedrock_wire.SESSION_SECRET_ACCESS_KEY,
    bedrock_wire.SESSION_TOKEN,
]


@pytest.fixture(scope="module")
def help_text() -> str:
    aimm = Path(sys.executable).with_name("aimm")
    done = subprocess.run([str(aimm), "mock-provider", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_sigv4_pairs_the_bedrock_mock_checks_are_in_help_and_docs(help_text: str) -> None:
    # Every documented pair is one the mock verifies signatures with.
    assert bedrock_wire.CREDENTIALS[bedrock_wire.ACCESS_KEY_ID] == (bedrock_wire.SECRET_ACCESS_KEY, None)
    assert bedrock_wire.CREDENTIALS[bedrock_wire.SESSION_ACCESS_KEY_ID] == (
        bedrock_wire.SESSION_SECRET_ACCESS_KEY,
        bedrock_wire.SESSION_TOKEN,
    )
    doc = DOC.read_text()
    for value in SIGV4_VALUES:
        assert value in help_text, f"{value!r} missing from `aimm mock-provider --help`"
        assert value in doc, f"{value!r} missing from docs/providers.md"


@pytest.mark.parametrize("needle", ["vertex", "/token", "/_mock/vertex", "--require-auth", "azure"])
def test_help_explains_the_other_formats_credentials(help_text: str, needle: str) -> None:
    epilog = help_text.split("test credentials", 1)[-1]
    assert needle in epilog
