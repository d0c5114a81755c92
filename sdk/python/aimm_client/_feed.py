"""The live feed over WebSocket (GET /api/v1/ws): connection options and message decoding."""

from __future__ import annotations

import json
from typing import Any

from websockets.exceptions import InvalidStatus

from aimm_client._retry import parse_retry_after
from aimm_client.errors import APIError, error_from_body
from aimm_client.types import FeedEvent

FEED_PATH = "/api/v1/ws"
CHANNELS = frozenset({"metrics", "models", "alerts", "requests"})


def check_channels(channels: list[str]) -> list[str]:
    unknown = sorted(set(channels) - CHANNELS)
    if not channels or unknown:
        raise ValueError(f"channels must be a non-empty subset of {sorted(CHANNELS)}; unknown: {unknown}")
    return channels


def decode(message: str | bytes) -> FeedEvent:
    data: Any = json.loads(message)
    return FeedEvent.from_json(data if isinstance(data, dict) else {"data": data})


def handshake_error(exc: InvalidStatus) -> APIError:
    """A refused upgrade (401, 403, 404, 429...) as the same APIError a plain call would raise."""
    response = exc.response
    try:
        body: Any = json.loads(response.body or b"")
    except ValueError:
        body = (response.body or b"").decode(errors="replace")
    headers = {k.lower(): v for k, v in response.headers.raw_items()}
    return error_from_body(
        body,
        status=response.status_code,
        request_id=headers.get("x-request-id"),
        retry_after=parse_retry_after(headers),
    )
