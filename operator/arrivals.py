"""Bursts of new objects per namespace, so models applied before their gateway do not flap.

A `kubectl apply -f dir/` or a GitOps sync creates hundreds of objects in seconds, often the
AIModels before the AIGateway that selects them. Writing each new model's first status as
`NotSelected` and, moments later, as `Ready` doubles the status writes (N more API requests and
N more watch events) and shows a state that was never meant. While new objects keep arriving in a
namespace, a model's *first* status is held if it would be `NotSelected`; once the namespace has
been quiet for `quiet_s` (or the burst has lasted `max_hold_s`), it is written as computed then.

A burst also paces the namespace's runs: each run reads, compiles and checks every object of the
namespace, and back-to-back runs during a burst of a thousand creates did that dozens of times over
(a ConfigMap write each, with the gateway already there), on the cores the API server needed for
the creates. During a burst a run starts at most every `pace_s`, and sees everything that arrived
meanwhile; outside a burst a run starts at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Arrivals:
    quiet_s: float = 2.0
    max_hold_s: float = 30.0
    pace_s: float = 0.5
    clock: Callable[[], float] = time.monotonic
    _bursts: dict[str, tuple[float, float]] = field(default_factory=dict)  # ns -> (first, last) arrival
    _runs: dict[str, float] = field(default_factory=dict)  # ns -> when its last run started, in a burst

    def arrived(self, namespace: str) -> None:
        """A new object was seen in `namespace`."""
        now = self.clock()
        first, last = self._bursts.get(namespace, (now, now))
        if now - last >= self.quiet_s:  # the previous burst is over: this one starts now
            first = now
        self._bursts[namespace] = (first, now)

    def holding(self, namespace: str) -> float:
        """Seconds until the burst in `namespace` is over (0: none, first statuses are written now)."""
        burst = self._bursts.get(namespace)
        if burst is None:
            return 0.0
        first, last = burst
        left = min(last + self.quiet_s, first + self.max_hold_s) - self.clock()
        if left <= 0:
            del self._bursts[namespace]
            self._runs.pop(namespace, None)
            return 0.0
        return left

    def run_delay(self, namespace: str) -> float:
        """Seconds to wait before the next run of `namespace` starts (0 outside a burst)."""
        last = self._runs.get(namespace)
        if last is None or self.holding(namespace) <= 0:
            return 0.0
        return max(0.0, last + self.pace_s - self.clock())

    def run_started(self, namespace: str) -> None:
        """A run of `namespace` starts now (remembered only during a burst)."""
        if self.holding(namespace) > 0:
            self._runs[namespace] = self.clock()
