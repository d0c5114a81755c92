"""The live feed over WebSocket (GET /api/v1/ws): connection options and message decoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from aimm_client._base import USER_AGENT, Settings
from aimm_client._retry import parse_retry_after
from aimm_client.errors import APIConnectionError, APIError, error_from_body
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


class FeedState:
    """What a subscription holds, sync or async: where to connect, and how failures read."""

    def __init__(self, settings: Settings, channels: list[str]) -> None:
        self._settings, self.channels = settings, channels

    def _connect_args(self) -> tuple[str, dict[str, Any]]:
        """The URL and keyword arguments of websockets' `connect` (the same in both APIs)."""
        s = self._settings
        headers = {"authorization": f"Bearer {s.api_key}"} if s.api_key else None
        options = {"additional_headers": headers, "open_timeout": s.timeout.connect, "user_agent_header": USER_AGENT}
        return s.ws_url(FEED_PATH, self.channels), options

    @contextmanager
    def _connecting(self) -> Iterator[None]:
        """A refused upgrade raises its APIError; an unreachable gateway, APIConnectionError."""
        try:
            yield
        except InvalidStatus as exc:
            raise handshake_error(exc) from None
        except OSError as exc:
            raise APIConnectionError(f"cannot reach {self._settings.base_url}: {exc}") from exc

    @staticmethod
    @contextmanager
    def _receiving() -> Iterator[None]:
        try:
            yield
        except ConnectionClosed as exc:
            raise APIConnectionError(f"live feed closed: {exc}") from exc
