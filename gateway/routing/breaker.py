"""Circuit breaker per model: closed -> open -> half_open -> closed (or open again).

Opens after `failure_threshold` consecutive failures, or when the failure share over the last
`window_s` reaches `failure_rate` once the window holds `min_requests` outcomes. Stays open for
`timeout_s`; then admits `half_open_requests` probes. All probes succeeding closes it; any probe
failure re-opens it for a fresh `timeout_s`. A re-open never shortens an open period.

Only upstream health counts: 5xx, timeouts, connection errors (and 429 when `trip_on_429`).
Other outcomes (client 4xx) are neutral: they neither trip nor heal the breaker, but they do
free a half-open probe slot.
"""

from __future__ import annotations

from typing import Final

from aimm_gateway.config import CircuitBreakerSettings
from aimm_gateway.routing.clock import Clock

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

_BUCKETS: Final = 10  # failure-rate window resolution: window_s / 10


def is_breaker_failure(kind: str, status: int | None, settings: CircuitBreakerSettings) -> bool:
    """Whether an upstream error counts against the model's health.

    kind "timeout" or "connection" always counts. Otherwise the status decides (whatever the
    kind is called): 429 counts only when `trip_on_429`; any other 4xx is the client's problem
    and never counts; 5xx counts; no status at all (no parsable response) counts.
    """
    if kind == "timeout" or kind == "connection":
        return True
    if status is None:
        return True
    if status == 429:
        return settings.trip_on_429
    return not 400 <= status < 500


class _RateWindow:
    """Outcome counts over a sliding window, in fixed buckets so recording is O(1)."""

    __slots__ = ("_fail", "_ok", "_slot", "_width", "fails", "total")

    def __init__(self, window_s: float) -> None:
        self._width = window_s / _BUCKETS
        self._ok = [0] * _BUCKETS
        self._fail = [0] * _BUCKETS
        self._slot = 0
        self.fails = 0
        self.total = 0

    def add(self, now: float, failed: bool) -> None:
        slot = int(now / self._width)
        if slot != self._slot:
            self._expire(slot)
        i = slot % _BUCKETS
        if failed:
            self._fail[i] += 1
            self.fails += 1
        else:
            self._ok[i] += 1
        self.total += 1

    def _expire(self, slot: int) -> None:
        # Clear every bucket that left the window since the last add (at most all of them).
        for s in range(max(self._slot + 1, slot - _BUCKETS + 1), slot + 1):
            i = s % _BUCKETS
            self.fails -= self._fail[i]
            self.total -= self._ok[i] + self._fail[i]
            self._ok[i] = self._fail[i] = 0
        self._slot = slot

    def clear(self) -> None:
        self._ok = [0] * _BUCKETS
        self._fail = [0] * _BUCKETS
        self.fails = self.total = 0


class CircuitBreaker:
    """One model's breaker. Times are passed in (monotonic seconds) so the hot path reads the
    clock once per decision; `version` changes whenever admission may have changed, which lets
    callers cache availability."""

    __slots__ = (
        "_consecutive",
        "_probe_ok",
        "_probe_started",
        "_probes",
        "_retry_at",
        "_state",
        "_window",
        "clock",
        "opened",
        "settings",
        "version",
    )

    def __init__(self, settings: CircuitBreakerSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._state: str = CLOSED  # OPEN past its retry_at is half-open; see _tick
        self._retry_at = 0.0
        self._consecutive = 0
        self._window = _RateWindow(settings.window_s)
        self._probes = 0  # probes in flight
        self._probe_ok = 0  # probes succeeded in this half-open period
        self._probe_started = 0.0
        self.opened = 0  # times opened, for metrics
        self.version = 0

    def configure(self, settings: CircuitBreakerSettings) -> None:
        """New settings on reload. The current state and open period are kept as they are."""
        if settings is self.settings:
            return
        if settings == self.settings:
            self.settings = settings
            return
        if settings.window_s != self.settings.window_s:
            self._window = _RateWindow(settings.window_s)
        self.settings = settings
        self.version += 1

    # -- reading ---------------------------------------------------------------------------

    def state_at(self, now: float) -> str:
        if self._state == OPEN and now >= self._retry_at:
            return HALF_OPEN
        return self._state

    @property
    def state(self) -> str:
        """ "closed", "open" or "half_open", now."""
        return self.state_at(self.clock.monotonic())

    def retry_at(self, now: float | None = None) -> float | None:
        """Monotonic time it admits a request again (goes half-open, or a busy probe slot is
        presumed lost); None when it admits now."""
        if now is None:
            now = self.clock.monotonic()
        state = self.state_at(now)
        if state == OPEN:
            return self._retry_at
        if state == HALF_OPEN and not self._slot_free(now):
            return self._probe_started + self.settings.timeout_s
        return None

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def available(self, now: float) -> bool:
        """Would `acquire` admit a request now? Does not take a probe slot."""
        if self._state == CLOSED:
            return True
        if self._state == OPEN:
            return now >= self._retry_at  # the first half-open probe
        return self._slot_free(now)

    def _slot_free(self, now: float) -> bool:
        if self._state == OPEN:
            return True  # half-open by time, no probe taken yet
        if self._probes + self._probe_ok < self.settings.half_open_requests:
            return True
        # A probe with no verdict for a whole timeout is presumed lost; let another one go.
        return self._probes > 0 and now - self._probe_started >= self.settings.timeout_s

    # -- transitions -----------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        if self._state == OPEN and now >= self._retry_at:
            self._state = HALF_OPEN
            self._probes = self._probe_ok = 0
            self.version += 1

    def acquire(self, now: float) -> bool:
        """Admit a request about to be sent; in half-open this takes a probe slot."""
        if self._state == CLOSED:
            return True
        self._tick(now)
        if self._state == OPEN:
            return False
        if self._probes + self._probe_ok >= self.settings.half_open_requests:
            if not (self._probes > 0 and now - self._probe_started >= self.settings.timeout_s):
                return False
            self._probes = 0  # reclaim lost probes
        self._probes += 1
        self._probe_started = now
        self.version += 1
        return True

    def on_success(self, now: float) -> None:
        if self._state == CLOSED:
            self._consecutive = 0
            self._window.add(now, False)
            return
        self._tick(now)
        if self._state == HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            self._probe_ok += 1
            if self._probe_ok >= self.settings.half_open_requests:
                self._close()
            else:
                self.version += 1
        # OPEN: a late answer to a request sent before the trip; not evidence of recovery.

    def on_failure(self, now: float) -> None:
        if self._state == CLOSED:
            self._consecutive += 1
            w = self._window
            w.add(now, True)
            s = self.settings
            if self._consecutive >= s.failure_threshold or (
                w.total >= s.min_requests and w.fails >= s.failure_rate * w.total
            ):
                self._open(now)
            return
        self._tick(now)
        if self._state == HALF_OPEN:
            self._open(now)
        # OPEN: a late failure of a request sent before the trip; already accounted for.

    def on_release(self, now: float) -> None:
        """A request ended without a verdict on health (cancelled, client 4xx): free its slot."""
        if self._state == HALF_OPEN and self._probes > 0:
            self._probes -= 1
            self.version += 1

    def _open(self, now: float) -> None:
        # max(): a re-open never shortens an open period already promised to clients.
        self._retry_at = max(self._retry_at, now + self.settings.timeout_s)
        self._state = OPEN
        self._probes = self._probe_ok = 0
        self._consecutive = 0
        self._window.clear()
        self.opened += 1
        self.version += 1

    def _close(self) -> None:
        self._state = CLOSED
        self._probes = self._probe_ok = 0
        self._consecutive = 0
        self._window.clear()
        self.version += 1
