"""Fault injection and request statistics for the mock upstream providers.

Settings live on each app instance (a :class:`FaultInjector`), can be changed at runtime with
``POST /_mock/faults`` and overridden for one request with the ``x-mock-fault`` header::

    x-mock-fault: status=503
    x-mock-fault: latency_ms=200; cut_after=2
    x-mock-fault: {"status_code": 429, "retry_after_ms": 10}

A header that sets ``status_code`` (alias ``status``) without ``fail_rate`` makes *that*
request fail. ``fail_next`` is a counter of the app and cannot be set per request.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

FAULT_HEADER = "x-mock-fault"


class FaultSettings(BaseModel):
    """How a mock provider misbehaves. All delays are in milliseconds."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0, ge=0, description="delay before response headers")
    first_byte_delay_ms: float = Field(default=0, ge=0, description="stream: headers -> first event")
    stream_chunks: int = Field(default=8, ge=1, description="pieces a streamed reply is split into")
    chunk_interval_ms: float = Field(default=0, ge=0, description="stream: delay between events")
    fail_rate: float = Field(default=0, ge=0, le=1, description="P(request fails with status_code)")
    status_code: int = Field(default=500, ge=400, le=599, description="status of injected failures")
    retry_after_ms: int = Field(default=1000, ge=0, description="retry-after(-ms) of 429/503/529")
    cut_stream_after: int | None = Field(default=None, ge=0, description="close stream after N events")
    stream_error_after: int | None = Field(default=None, ge=0, description="error event after N events")
    reset_connection: float = Field(default=0, ge=0, le=1, description="P(connection dropped)")
    fail_next: int = Field(default=0, ge=0, description="the next N requests fail with status_code")


_ALIASES = {
    "status": "status_code",
    "latency": "latency_ms",
    "first_byte_ms": "first_byte_delay_ms",
    "chunks": "stream_chunks",
    "interval_ms": "chunk_interval_ms",
    "cut_after": "cut_stream_after",
    "error_after": "stream_error_after",
    "reset": "reset_connection",
    "retry_after": "retry_after_ms",
}


def parse_fault_header(value: str) -> dict[str, Any]:
    """Parse ``x-mock-fault``: a JSON object or ``key=value`` pairs separated by ``;`` or ``,``."""
    text = value.strip()
    if text.startswith("{"):
        raw = orjson.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("x-mock-fault JSON must be an object")
        items: list[tuple[str, Any]] = [(str(k), v) for k, v in raw.items()]
    else:
        items = [_split_pair(part) for part in text.replace(",", ";").split(";") if part.strip()]
    return {_ALIASES.get(key, key): val for key, val in items}


def _split_pair(part: str) -> tuple[str, Any]:
    key, sep, val = part.partition("=")
    if not sep:
        raise ValueError(f"x-mock-fault: expected key=value, got {part.strip()!r}")
    val = val.strip()
    try:
        return key.strip(), orjson.loads(val)  # numbers, true/false, null
    except orjson.JSONDecodeError:
        return key.strip(), val


@dataclass(slots=True)
class RequestFaults:
    """The faults decided for one request (seconds, ready for asyncio.sleep)."""

    latency_s: float = 0.0
    first_byte_delay_s: float = 0.0
    stream_chunks: int = 8
    chunk_interval_s: float = 0.0
    fail_status: int | None = None
    retry_after_ms: int = 1000
    reset: bool = False
    cut_after: int | None = None
    error_after: int | None = None


class FaultInjector:
    """Per-app fault state: current settings, the fail_next counter and the random source."""

    def __init__(self, settings: FaultSettings | None = None, rng: random.Random | None = None) -> None:
        self._initial = (settings or FaultSettings()).model_copy()
        self.settings = self._initial.model_copy()
        self.rng = rng if rng is not None else random.Random()
        self._default_plan = _plan_from(self.settings)

    def update(self, fields: Mapping[str, Any]) -> FaultSettings:
        """Merge ``fields`` into the current settings (validated; raises pydantic.ValidationError)."""
        merged = {**self.settings.model_dump(), **{_ALIASES.get(k, k): v for k, v in fields.items()}}
        self._replace(FaultSettings.model_validate(merged))
        return self.settings

    def reset(self) -> None:
        self._replace(self._initial.model_copy())

    def _replace(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._default_plan = _plan_from(settings)

    def plan(self, header: str | None = None) -> RequestFaults:
        """Decide this request's faults. Raises ValueError on a malformed ``x-mock-fault``."""
        settings, forced = self.settings, False
        if header:
            override = parse_fault_header(header)
            override.pop("fail_next", None)
            forced = "status_code" in override and "fail_rate" not in override
            settings = FaultSettings.model_validate({**settings.model_dump(), **override})
        if not (header or settings.reset_connection or settings.fail_rate or settings.fail_next):
            return self._default_plan  # hot path: nothing random, nothing per-request
        plan = _plan_from(settings)
        if settings.reset_connection and self.rng.random() < settings.reset_connection:
            plan.reset = True
        elif forced or self._take_fail_next() or self._roll(settings.fail_rate):
            plan.fail_status = settings.status_code
        return plan

    def _take_fail_next(self) -> bool:
        if self.settings.fail_next <= 0:
            return False
        self.settings.fail_next -= 1
        return True

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate


def _plan_from(s: FaultSettings) -> RequestFaults:
    return RequestFaults(
        latency_s=s.latency_ms / 1000,
        first_byte_delay_s=s.first_byte_delay_ms / 1000,
        stream_chunks=s.stream_chunks,
        chunk_interval_s=s.chunk_interval_ms / 1000,
        retry_after_ms=s.retry_after_ms,
        cut_after=s.cut_stream_after,
        error_after=s.stream_error_after,
    )


@dataclass(slots=True)
class MockStats:
    """What reached the mock: tests assert how many attempts the gateway made."""

    total: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    dropped: int = 0  # connections dropped by reset_connection
    _last: tuple[str, list[tuple[bytes, bytes]], Any] | None = None  # decoded only when asked for

    def record_request(self, path: str) -> None:
        self.total += 1
        self.by_path[path] += 1

    def record_last(self, path: str, raw_headers: list[tuple[bytes, bytes]], body: Any) -> None:
        self._last = (path, raw_headers, body)

    @property
    def last_request(self) -> dict[str, Any] | None:
        """The last admitted API request: path, headers (lower-cased) and parsed JSON body."""
        if self._last is None:
            return None
        path, raw_headers, body = self._last
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        return {"path": path, "headers": headers, "body": body}

    def record_status(self, status: int) -> None:
        self.by_status[status] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": dict(self.by_path),
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "dropped": self.dropped,
            "last_request": self.last_request,
        }

    def reset(self) -> None:
        self.total = 0
        self.by_path.clear()
        self.by_status.clear()
        self.dropped = 0
        self._last = None
