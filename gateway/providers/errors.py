"""Map an upstream's HTTP error to the caller's error shape with the provider's own message."""

from __future__ import annotations

from typing import Any

import orjson

from aimm_gateway.errors import UpstreamError
from aimm_gateway.retry_after import retry_after_s

# Client-side problems the caller can fix: passed through with the provider's status.
_PASS_THROUGH = {400, 404, 409, 413, 415, 422}
_OVERLOADED = {503, 529}


def upstream_error(provider: str, status: int, headers: dict[str, str], body: bytes) -> UpstreamError:
    message = _message(body) or f"HTTP {status}"
    text = f"{provider} upstream error: {message}"
    retry_after = retry_after_s(headers)
    if status == 429:
        return UpstreamError(
            text,
            status=429,
            retryable=True,
            retry_after_s=retry_after,
            kind="rate_limited",
            type="rate_limit_error",
        )
    if status in _PASS_THROUGH:
        return UpstreamError(text, status=status, retryable=False, kind="invalid_request", type="invalid_request_error")
    if status in (401, 403):
        # The gateway's credentials were refused: the caller can't fix that, so 502, not 401.
        return UpstreamError(
            f"{provider} upstream refused the gateway's credentials",
            status=502,
            retryable=True,
            kind="upstream_auth",
        )
    if status == 408:
        return UpstreamError(text, status=504, retryable=True, kind="timeout", type="timeout_error")
    if status in _OVERLOADED:
        return UpstreamError(text, status=503, retryable=True, retry_after_s=retry_after, kind="overloaded")
    return UpstreamError(text, status=502, retryable=status >= 500, kind="http")


def _message(body: bytes) -> str | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode(errors="replace").strip()
        return text or None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return None
