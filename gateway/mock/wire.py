"""What every mock wire format shares at the HTTP level: the bearer token, the entry of an
injected failure's status, and SSE framing. Each `*_wire.py` keeps only what its provider does
differently (wording, body shapes, header names)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson

from .engine import MockValidationError

T = TypeVar("T")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" (any other scheme or none)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def optional_list(raw: Any, invalid: Callable[[], MockValidationError]) -> list[Any]:
    """An optional list field: [] when absent, the list as sent, else the provider's own error."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid()
    return raw


def for_status(table: Mapping[int, T], status: int, server_error: T, client_error: T) -> T:
    """A provider's answer for an injected status: its table's entry, else its generic server
    (5xx) or client error."""
    return table.get(status, server_error if status >= 500 else client_error)


def sse_data(event: dict[str, Any], end: bytes = b"\n\n") -> bytes:
    """One unnamed SSE event (OpenAI, Azure; Google ends events with CRLF)."""
    return b"data: " + orjson.dumps(event) + end


def sse_named(event: dict[str, Any]) -> bytes:
    """One SSE event named by its `type` (Anthropic, Cohere)."""
    name: str = event["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
