"""Errors: one class per API error type, each carrying status, code, request id and retry_after.

The gateway answers every failure with OpenAI's error shape
(`{"error": {"message", "type", "param", "code"}}`); `error_from_body` picks the class by `type`
(and status, for 404s), so callers can `except RateLimitError` instead of reading strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class AimmError(Exception):
    """Base of every error this SDK raises."""


class APIConnectionError(AimmError):
    """The gateway could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """The client-side timeout expired."""


class APIError(AimmError):
    """The gateway answered with an error (HTTP status >= 400, or an error event mid-stream)."""

    default_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
        during_stream: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.default_status
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after  # seconds, from Retry-After / retry-after-ms
        self.body = dict(body) if body is not None else {}
        self.during_stream = during_stream  # the stream had started (HTTP 200) when this arrived

    def __str__(self) -> str:
        return f"{self.status} {self.type or 'error'}: {self.message}" + (
            f" (request {self.request_id})" if self.request_id else ""
        )


class InvalidRequestError(APIError):
    default_status = 400


class NotFoundError(InvalidRequestError):
    default_status = 404


class AuthenticationError(APIError):
    default_status = 401


class PermissionDeniedError(APIError):
    default_status = 403


class RateLimitError(APIError):
    default_status = 429


class InsufficientQuotaError(RateLimitError):
    """A budget blocked the call (429, type insufficient_quota)."""


class UpstreamError(APIError):
    default_status = 502


class UpstreamTimeoutError(APIError):
    default_status = 504


class ServiceUnavailableError(APIError):
    default_status = 503


class InternalServerError(APIError):
    default_status = 500


_BY_TYPE: dict[str, type[APIError]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "rate_limit_error": RateLimitError,
    "insufficient_quota": InsufficientQuotaError,
    "upstream_error": UpstreamError,
    "timeout_error": UpstreamTimeoutError,
    "service_unavailable": ServiceUnavailableError,
    "server_error": InternalServerError,
}
# For a body without a known type: the class whose default status it is (429: RateLimitError).
_BY_STATUS: dict[int, type[APIError]] = {
    cls.default_status: cls
    for cls in (
        InvalidRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        RateLimitError,
        UpstreamError,
        ServiceUnavailableError,
        UpstreamTimeoutError,
    )
}


def error_class(type_: str | None, status: int | None) -> type[APIError]:
    if status == 404 and type_ in (None, "invalid_request_error"):
        return NotFoundError
    if type_ in _BY_TYPE:
        return _BY_TYPE[type_]
    if status is not None and status in _BY_STATUS:
        return _BY_STATUS[status]
    return InternalServerError if status is None or status >= 500 else APIError


def error_from_body(
    body: Any,
    *,
    status: int | None,
    request_id: str | None = None,
    retry_after: float | None = None,
    during_stream: bool = False,
) -> APIError:
    """The exception for an OpenAI-shaped error body (or any body, for non-gateway failures)."""
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        text = str(body)[:300] if body else f"HTTP {status}"
        return error_class(None, status)(text, status=status, request_id=request_id, retry_after=retry_after)
    type_ = err.get("type") if isinstance(err.get("type"), str) else None
    cls = error_class(type_, status)
    return cls(
        str(err.get("message") or f"HTTP {status}"),
        status=status,
        type=type_,
        code=err.get("code") if isinstance(err.get("code"), str) else None,
        param=err.get("param") if isinstance(err.get("param"), str) else None,
        request_id=request_id,
        retry_after=retry_after,
        body=body,
        during_stream=during_stream,
    )
