"""Gateway errors, rendered everywhere in OpenAI's error shape.

Every failure a client can see is a `GatewayError`: one status code, one OpenAI-style body
(`{"error": {"message", "type", "param", "code"}}`) and optional headers (Retry-After).
"""

from __future__ import annotations

from typing import Any

import orjson


def _set_given(target: object, **values: object) -> None:
    """Overrides of the class defaults: only the ones given (None means "keep the default")."""
    for name, value in values.items():
        if value is not None:
            setattr(target, name, value)


class GatewayError(Exception):
    """An error with an HTTP status and an OpenAI-shaped body."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init_subclass__(cls, *, status: int | None = None, type: str | None = None, code: str | None = None) -> None:
        # A subclass states its defaults in its class line: `class X(GatewayError, status=404, ...)`.
        super().__init_subclass__()
        _set_given(cls, status=status, type=type, code=code)

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        _set_given(self, status=status, type=type, code=code)
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


# Each error kind is its status, OpenAI `type` and `code`, declared in the class line itself.
class InvalidRequest(GatewayError, status=400, type="invalid_request_error"): ...


class Unauthorized(GatewayError, status=401, type="authentication_error", code="invalid_api_key"): ...


class Forbidden(GatewayError, status=403, type="permission_error"): ...


class NotFound(GatewayError, status=404, type="invalid_request_error", code="not_found"): ...


class ModelNotFound(GatewayError, status=404, type="invalid_request_error", code="model_not_found"): ...


class PayloadTooLarge(GatewayError, status=413, type="invalid_request_error", code="request_too_large"): ...


class RequestTimeout(GatewayError, status=408, type="invalid_request_error", code="request_timeout"):
    """The client did not finish sending its body in time (slowloris on the body)."""


class RateLimited(GatewayError, status=429, type="rate_limit_error", code="rate_limit_exceeded"): ...


class UpstreamError(GatewayError, status=502, type="upstream_error", code="upstream_error"):
    """The upstream provider failed; `retryable` says whether another attempt may help."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        retryable: bool = True,
        retry_after_s: float | None = None,
        kind: str = "upstream_error",
        param: str | None = None,
        type: str | None = None,
    ) -> None:
        headers = {"retry-after": _format_retry_after(retry_after_s)} if retry_after_s is not None else None
        super().__init__(message, status=status, code=kind, param=param, headers=headers, type=type)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.kind = kind


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=504, retryable=True, kind="timeout", type="timeout_error")


class NoUsableModel(GatewayError, status=503, type="service_unavailable", code="no_usable_model"): ...


def _format_retry_after(seconds: float) -> str:
    # Retry-After takes whole seconds; round up so a client never retries too early.
    whole = int(seconds)
    return str(whole if whole == seconds else whole + 1)


def format_retry_after(seconds: float) -> str:
    return _format_retry_after(max(0.0, seconds))
